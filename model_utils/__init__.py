"""CLLM Lab library: load a causal LM, decode it (AR / Jacobi), record trajectories, train a CLLM."""
from model_utils.hf_generate import jacobi_generate

__all__ = ["jacobi_generate"]
