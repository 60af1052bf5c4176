"""The embedded GSM8K models' recipe: generated problems, tokenizer, base pretraining, the build script."""

import model_utils  # noqa: F401,E402 - first: it quiets a bitsandbytes import-time warning
