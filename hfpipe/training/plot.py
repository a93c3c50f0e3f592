"""Figures: a grid of panels saved atomically, and the loss plot drawn at the end of training (train and
validation loss against tokens seen, or steps). matplotlib is imported on first use."""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..io import write_file_atomically


def panels(n: int, cols: int = 3, size: tuple[float, float] = (4.0, 3.0)):
    """A figure of ``n`` panels, ``cols`` to a row (the unused ones hidden); returns ``(figure, axes)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n]


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Lay out ``fig``, write it to ``path`` through a temp file, and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    written = write_file_atomically(lambda tmp: fig.savefig(tmp, dpi=dpi), path)
    plt.close(fig)
    return written


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
    fig, (ax,) = panels(1, size=(6, 4))
    for points, label, marker in ((train, "training loss", "."), (val, "validation loss", "o")):
        if points:
            ax.plot(*zip(*points), marker=marker, label=label, markersize=3)
    ax.set_xlabel("tokens seen" if use_tokens else "optimizer step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=120)
