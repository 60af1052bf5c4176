"""CLLM Lab's Gradio app: `python -m app`."""
