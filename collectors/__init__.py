"""cotenant.collectors."""
