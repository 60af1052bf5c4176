"""CLLM Lab library: load a causal LM, decode it (AR / Jacobi), record trajectories, train a CLLM."""
