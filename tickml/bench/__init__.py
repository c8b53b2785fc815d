"""Benchmarks: the model API against in-process scoring, and the whole stream."""
