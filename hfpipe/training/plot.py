"""The loss plot drawn at the end of training: train and validation loss against tokens seen."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_losses(log_history: list[dict], tokens_per_step: int, path: str | os.PathLike) -> Path | None:
    """Draw ``loss`` and ``eval_loss`` from a Trainer ``log_history`` against tokens seen; returns the PNG path."""
    train = [(h["step"] * tokens_per_step, h["loss"]) for h in log_history if "loss" in h]
    val = [(h["step"] * tokens_per_step, h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for points, label, marker in ((train, "training loss", "."), (val, "validation loss", "o")):
        if points:
            ax.plot(*zip(*points), marker=marker, label=label, markersize=3)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return path
