"""CLLM Lab's Gradio app: `python -m app`."""

import model_utils  # noqa: F401,E402 - first: it quiets a bitsandbytes import-time warning
