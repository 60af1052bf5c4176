"""CLLM Lab library: load a causal LM, decode it (AR / Jacobi), record trajectories, train a CLLM."""
import logging

# bitsandbytes warns on import, on CPUs with AVX512-BF16, that an optional kernel package is missing; its own
# CPU kernels run all the same, and the warning would break the one-line errors of every command.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from model_utils.hf_generate import jacobi_generate  # noqa: E402

__all__ = ["jacobi_generate"]
