"""The loss plot drawn at the end of training: train and validation loss against tokens seen (or steps)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

from ..io import write_file_atomically

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _x(entry: dict) -> float:
    for key in ("tokens_seen", "num_input_tokens_seen"):
        if key in entry:
            return entry[key]
    return entry["step"]


def plot_losses(log_history: list[dict], path: str | os.PathLike) -> Path | None:
    """Draw ``loss`` and ``eval_loss`` of a Trainer ``log_history``; returns the PNG path (None if nothing to draw).

    The x axis is tokens seen when every entry has it, else optimizer steps.
    """
    entries = [h for h in log_history if "loss" in h or "eval_loss" in h]
    if not entries:
        return None
    # eval entries carry no token count: place them at the training logs' tokens-per-step rate
    counted = [h for h in log_history if "loss" in h and _x(h) != h["step"] and h["step"] > 0]
    use_tokens = bool(counted)
    rate = _x(counted[-1]) / counted[-1]["step"] if use_tokens else 1.0
    x = (lambda h: _x(h) if _x(h) != h["step"] else h["step"] * rate) if use_tokens else (lambda h: h["step"])  # noqa: E731
    train = [(x(h), h["loss"]) for h in entries if "loss" in h]
    val = [(x(h), h["eval_loss"]) for h in entries if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 4))
    for points, label, marker in ((train, "training loss", "."), (val, "validation loss", "o")):
        if points:
            ax.plot(*zip(*points), marker=marker, label=label, markersize=3)
    ax.set_xlabel("tokens seen" if use_tokens else "optimizer step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = write_file_atomically(lambda tmp: fig.savefig(tmp, dpi=120), path)
    plt.close(fig)
    return path
