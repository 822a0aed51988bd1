"""cotenant.models."""
