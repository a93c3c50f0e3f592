"""Side-by-side measures of two models of the same tokenizer: size on disk, perplexity, generation speed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch


def directory_size(path: str | os.PathLike) -> int:
    """Bytes of the model's weight files (``*.safetensors``, ``pytorch_model*.bin``, ``*.gguf``) in ``path`` (a
    dir or a file); checkpoints in subdirectories and ``training_args.bin`` do not count."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    files = [
        p
        for p in path.iterdir()
        if p.is_file() and (p.suffix in (".safetensors", ".gguf") or p.name.startswith("pytorch_model"))
    ]
    if not files:
        raise FileNotFoundError(f"{path} holds no weight files (*.safetensors, *.bin, *.gguf)")
    return sum(p.stat().st_size for p in files)


def count_parameters(model) -> int:
    """Parameters of ``model``, counting each shared tensor once (quantized ones by their logical shape)."""
    return sum(p.numel() for p in model.parameters())


def text_blocks(tokenizer, text: str, block_size: int, max_blocks: int | None = None) -> torch.Tensor:
    """Token ids of ``text`` cut into consecutive blocks of ``block_size`` (the ragged tail dropped)."""
    # verbose=False: no "longer than the specified maximum sequence length" warning, the text is cut into blocks
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    n = len(ids) // block_size
    if max_blocks is not None:
        n = min(n, max_blocks)
    if n == 0:
        raise ValueError(
            f"held-out text has {len(ids)} tokens, fewer than one block of {block_size}; give more text"
        )
    return torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)


@torch.no_grad()
def generation_speed(model, prompt_ids: torch.Tensor, max_new_tokens: int = 64) -> float:
    """Greedy new tokens per second, exactly ``max_new_tokens`` of them, with the KV cache."""
    model.eval()
    prompt_ids = prompt_ids.to(next(model.parameters()).device)
    kwargs = {"max_new_tokens": max_new_tokens, "min_new_tokens": max_new_tokens, "do_sample": False}
    pad_id = model.generation_config.pad_token_id
    if pad_id is None:
        kwargs["pad_token_id"] = model.generation_config.eos_token_id or 0
    start = time.perf_counter()
    out = model.generate(prompt_ids, **kwargs)
    seconds = time.perf_counter() - start
    return (out.shape[-1] - prompt_ids.shape[-1]) * out.shape[0] / seconds


def compare_speed(models: dict, prompt_ids: torch.Tensor, max_new_tokens: int = 64, rounds: int = 3) -> dict:
    """Best tokens/s of each model over ``rounds`` interleaved runs (after a warm-up), so that a noisy,
    shared machine slows every model alike."""
    for model in models.values():
        generation_speed(model, prompt_ids, min(8, max_new_tokens))
    best = dict.fromkeys(models, 0.0)
    for _ in range(rounds):
        for name, model in models.items():
            best[name] = max(best[name], generation_speed(model, prompt_ids, max_new_tokens))
    return best


def format_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
