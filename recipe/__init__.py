"""The embedded GSM8K models' recipe: generated problems, tokenizer, base pretraining, the build script."""
