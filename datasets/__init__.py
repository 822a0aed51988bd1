"""cotenant.datasets."""
