"""cotenant: predicts how much co-located workloads slow each other down."""

__version__ = "0.1.0"
