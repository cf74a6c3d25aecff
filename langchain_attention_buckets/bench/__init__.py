"""Benchmarks: `accuracy` (accuracy by position of the essential item) and `speed`."""
