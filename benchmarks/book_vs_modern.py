"""The quickstart corpus: the book preset with AdamW against the modern preset with Muon, at equal steps and at
equal wall time. Used by bench_pretrain.py.

Both runs are recipes/pretrain.py as a user runs it (``quickstart.yaml`` and ``quickstart_modern.yaml``: the
same corpus, tokenizer, width, depth, batch and steps), launched at the same time as two processes of one torch
thread each, so that the load of other jobs hits both alike. benchmarks/pretrain_profile.py records each
validation loss with the wall time at which it was measured.
"""

from __future__ import annotations

from pathlib import Path

import vs_nanogpt

CONFIGS = vs_nanogpt.REPO / "recipes" / "configs"
SIDES = {"book, AdamW": CONFIGS / "quickstart.yaml", "modern, Muon": CONFIGS / "quickstart_modern.yaml"}
EVAL_STEPS = 40  # denser than the config's 100, for the equal-wall-time reading


def runs_for(work: Path, steps: int | None) -> list[vs_nanogpt.Run]:
    """One recipe run per side; ``steps`` overrides both configs' max_steps."""
    runs = []
    for name, config in SIDES.items():
        slug = name.split(",")[0]
        args = ["--config", str(config), "--output_dir", str(work / f"{slug}-out"), "--bf16", "false",
                "--eval_steps", str(EVAL_STEPS), "--save_steps", "100000"]  # fmt: skip
        if steps:
            args += ["--max_steps", str(steps)]
        runs.append(vs_nanogpt.Run(name, "hfpipe", args, work, work / f"{slug}-out"))
        runs[-1].name = name
    return runs


def run_all(work: Path, progress, steps: int | None = None) -> list[vs_nanogpt.Run]:
    """Both sides at the same time, one thread each; each run's result holds its curve and wall time."""
    work.mkdir(parents=True, exist_ok=True)
    runs = runs_for(work, steps)
    progress("quickstart corpus: book + AdamW and modern + Muon, together")
    vs_nanogpt.launch(runs, threads=1, concurrent=True)
    return runs


def loss_by(curve: list[list[float]], seconds: float) -> tuple[float, int] | None:
    """The last validation loss measured by ``seconds`` after the start, with its step."""
    seen = [(loss, step) for t, step, loss in curve if t <= seconds]
    return (seen[-1][0], int(seen[-1][1])) if seen else None


def render(runs: list[vs_nanogpt.Run], steps: int | None) -> list[str]:
    """The section of results/pretrain.md."""
    equal_time = min(r.result["wall"] for r in runs)
    lines = [
        "",
        "## Quickstart corpus: the book preset with AdamW against the modern preset with Muon",
        "",
        "`recipes/pretrain.py --config recipes/configs/quickstart.yaml` against `quickstart_modern.yaml` (same "
        "corpus, tokenizer, width, depth, batch and steps"
        + (f", {steps:,} steps given on the command line" if steps else "")
        + f"; validation every {EVAL_STEPS} steps, fp32), two processes at the same time, one thread each. "
        f"Equal wall time: each run's last validation loss measured within {equal_time:.0f} s of its start (the "
        "shorter run's whole wall time).",
        "",
        "| run | steps | wall time | s/step | validation loss at equal steps (final) | at equal wall time (step) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        r = run.result
        final = r["curve"][-1][2] if r["curve"] else float("nan")
        at_time = loss_by(r["curve"], equal_time)
        cell = f"{at_time[0]:.4f} ({at_time[1]:,})" if at_time else "n/a"
        lines.append(f"| {run.name} | {r['steps']:,} | {r['wall']:.0f} s | {r['wall'] / max(r['steps'], 1):.3f} | "
                     f"{final:.4f} | {cell} |")  # fmt: skip
    return lines
