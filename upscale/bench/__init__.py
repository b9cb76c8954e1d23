"""Benchmarks of the prediction path: ratios against baselines measured in the same run."""
