"""What the machine can do fast: one place to ask, so tests can patch the answer.

bf16 is only worth using where the hardware computes it natively: a CUDA GPU with bf16, or a CPU with
AVX512-BF16 or AMX. On other CPUs PyTorch emulates it and a training step runs ~4x slower than fp32.
"""

from __future__ import annotations

import os

import torch

# "1"/"0" overrides the detection (a wrong answer on an unusual machine, or tests of both branches).
FAST_BF16_ENV = "HFPIPE_FAST_BF16"


def has_accelerator() -> bool:
    """True when torch sees a GPU-like device (CUDA, ROCm, XPU, MPS...); False on a CPU-only machine."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return accelerator.is_available()
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bf16 math (AVX512-BF16 or AMX tiles)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def fast_bf16_available() -> bool:
    """True where bf16 math is fast: a CUDA GPU with bf16, or (no accelerator) a CPU with AVX512-BF16/AMX.

    ``HFPIPE_FAST_BF16=1`` or ``=0`` overrides the detection.
    """
    forced = os.environ.get(FAST_BF16_ENV)
    if forced is not None and forced.strip() != "":
        return forced.strip().lower() in ("1", "true", "yes", "on")
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    if has_accelerator():
        return False  # MPS/XPU: bf16 support varies; opt in with bf16: true
    return cpu_has_fast_bf16()


def launched_on_cpu_only() -> bool:
    """True for a multi-process launch (``accelerate launch``/torchrun) on a machine with no GPU."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_accelerator()
