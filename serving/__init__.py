"""cotenant.serving."""
