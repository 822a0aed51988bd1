"""cotenant.training."""
