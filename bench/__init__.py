"""Benchmarks. Each prints a table; ratios are measured within one run."""
