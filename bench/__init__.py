"""Benchmarks: each script starts its own isolated system and prints what it measured and where."""
