"""Ibis measured traces and workload profiles (MIT, see README.md)."""
