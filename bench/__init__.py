"""Benchmarks: speed of AR / Jacobi / prompt-lookup decoding, and GSM8K-style accuracy."""

import model_utils  # noqa: F401,E402 - first: it quiets a bitsandbytes import-time warning
