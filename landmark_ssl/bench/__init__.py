"""Benchmarks: ``python -m landmark_ssl.bench.<name>`` prints measurements."""
