"""Benchmarks: speed of AR / Jacobi / prompt-lookup decoding, and GSM8K-style accuracy."""
