"""Model FLOPs per token and the machine's measured matmul peak, for MFU."""

from __future__ import annotations

import time

import torch


def flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward): 6 N + 12 L T d (PaLM appendix B), N = non-embedding params."""
    d, n_layers = config.emb_dim, config.n_layers
    kv_width = config.n_kv_heads * config.head_dim
    attention = d * (d + 2 * kv_width) + d * d  # qkv and output projections
    ff_matrices = 3 if config.mlp == "swiglu" else 2
    block_params = n_layers * (attention + ff_matrices * d * config.intermediate_size)
    head_params = d * config.vocab_size
    return 6 * (block_params + head_params) + 12 * n_layers * seq_len * d


def measure_matmul_peak(dtype: torch.dtype = torch.float32, size: int = 2048, seconds: float = 1.0) -> float:
    """FLOP/s of a square matmul on this CPU/GPU (the best of repeated runs): the practical peak for MFU."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best
