"""Benchmarks (not tests): `python -m bench.suite` runs the whole suite (bench/suite.py)."""
