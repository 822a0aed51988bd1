"""Shared data shipped with the accelerator models."""
