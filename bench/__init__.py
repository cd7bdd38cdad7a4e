"""Benchmarks: `python -m bench NAME [--quick]` prints figures as ratios against a raw baseline
measured in the same run; the last line is one JSON object (see bench.common.Result)."""
