"""Model FLOPs per token and the machine's measured matmul peak, for MFU."""

from __future__ import annotations

import time

import torch


def flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward): 6 N + 12 L T d (PaLM appendix B), N = non-embedding params."""
    d, n_layers = config.emb_dim, config.n_layers
    block_params = n_layers * (4 * d * d + 2 * config.ff_mult * d * d)
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
