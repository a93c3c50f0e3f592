"""The pipeline's report card: ``report.md``, ``report.json`` and charts in its ``output_dir``.

Per stage: wall time, tokens, tokens/s and settings; the hardware and library versions; the loss curves of
every training stage; one evaluation table across the checkpoints (perplexity, bits per byte, lm-eval tasks,
answers ending with eos, template leakage, reward accuracy, DPO margin, int8 size and perplexity); and held-out
prompts answered by the base, SFT and DPO models side by side.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from importlib import metadata
from pathlib import Path

from .evaluation.results import COUNT_METRICS
from .io import write_file_atomically, write_json_atomically

logger = logging.getLogger(__name__)
LIBRARIES = ("hfpipe", "torch", "transformers", "tokenizers", "datasets", "accelerate", "peft", "trl",
             "huggingface_hub", "safetensors")  # fmt: skip
# (column, stage recipe, key in its results.json) of the quality table
QUALITY = (
    ("eos share", "sft", "eos_share"),
    ("template leak share", "sft", "template_leak_share"),
    ("eos share", "dpo", "eos_share"),
    ("reward accuracy", "reward_model", "test_accuracy"),
    ("reward margin", "reward_model", "test_margin"),
    ("DPO reward accuracy", "dpo", "test_rewards/accuracies"),
    ("DPO margin", "dpo", "test_rewards/margins"),
    ("int8 size / original", "quantize", None),
    ("int8 perplexity", "quantize", "int8_perplexity"),
    ("original perplexity", "quantize", "original_perplexity"),
)


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def hardware() -> dict:
    """The machine: CPU, cores, GPUs, and whether bf16 is native here."""
    import torch

    from .hardware import fast_bf16_available

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu": cpu, "cores": os.cpu_count(), "gpus": gpus, "native_bf16": fast_bf16_available(),
            "python": platform.python_version()}  # fmt: skip


def versions() -> dict:
    """The installed releases of the libraries hfpipe runs on (hfpipe: the running code's own)."""
    from . import __version__

    found = {"hfpipe": __version__}
    for name in LIBRARIES[1:]:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def stage_rows(out: Path, stages) -> list[dict]:
    """Per stage: recipe, status, wall time, tokens, tokens/s, the figures of its results.json, its settings."""
    state = _json(out / "pipeline.json").get("stages", {})
    rows = []
    for stage in stages:
        saved = state.get(stage.name, {})
        results = _json(out / stage.name / "results.json")
        metrics = results.get("metrics", {})
        seconds = saved.get("seconds")
        tokens = metrics.get("tokens_seen")
        rows.append({
            "stage": stage.name, "recipe": stage.recipe, "status": saved.get("status", "not run"),
            "seconds": seconds, "tokens": tokens, "tokens_per_second": metrics.get("train_tokens_per_second"),
            "metrics": metrics, "args": saved.get("args", stage.args),
        })  # fmt: skip
    return rows


def quality_table(out: Path, stages) -> list[dict]:
    """The checkpoints' figures from their stages' results: eos, leakage, reward accuracy, DPO margin, int8."""
    by_recipe = {}
    for stage in stages:
        by_recipe.setdefault(stage.recipe, stage.name)
    rows = []
    for column, recipe, key in QUALITY:
        name = by_recipe.get(recipe)
        metrics = _json(out / name / "results.json").get("metrics", {}) if name else {}
        if key is None and "int8_bytes" in metrics:
            value = metrics["int8_bytes"] / metrics["original_bytes"]
        else:
            value = metrics.get(key) if key else None
        if value is not None:
            rows.append({"figure": column, "stage": name, "value": value})
    gguf = next((s for s in stages if s.recipe == "export_gguf"), None)
    if gguf is not None and gguf.output.is_file():
        rows.append(
            {"figure": "GGUF size (MB)", "stage": gguf.name, "value": gguf.output.stat().st_size / 1e6}
        )
    return rows


def side_by_side_answers(out: Path, stages, n: int = 5) -> list[dict]:
    """``n`` held-out prompts (SFT's test split) answered greedily by the base, SFT and DPO models."""
    from .data.instructions import format_alpaca_prompt
    from .evaluation.answers import generate_answers
    from .loading import load_model, load_tokenizer

    sft = next((s for s in stages if s.recipe == "sft"), None)
    tests = _json(out / sft.name / "test_responses.json") if sft is not None else []
    if not isinstance(tests, list) or not tests or n <= 0:
        return []
    records = [{"prompt": format_alpaca_prompt(t), "completion": t.get("reference", ""), "instruction": t["instruction"],
                "input": t.get("input", "")} for t in tests[:n]]  # fmt: skip
    models = [
        s
        for s in stages
        if s.recipe in ("pretrain", "sft", "dpo", "rl") and (out / s.name / "config.json").is_file()
    ]
    rows = [{"instruction": r["instruction"], "input": r["input"]} for r in records]
    for stage in models:
        model, tokenizer = load_model(out / stage.name).eval(), load_tokenizer(out / stage.name)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        for row, answer in zip(rows, generate_answers(model, tokenizer, records, max_new_tokens=48)):
            row[stage.name] = answer["response"]
        del model
    return rows


def plot_losses(out: Path, stages, path: Path) -> Path | None:
    """One panel per training stage: its training and validation loss against steps."""
    from .training.plot import panels, save_figure

    curves = []
    for stage in stages:
        history = _json(out / stage.name / "trainer_state.json").get("log_history", [])
        train = [(h["step"], h["loss"]) for h in history if "loss" in h]
        val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
        if train or val:
            curves.append((stage.name, train, val))
    if not curves:
        return None
    fig, axes = panels(len(curves), size=(4.2, 3.2))
    for ax, (name, train, val) in zip(axes, curves):
        if train:
            ax.plot(*zip(*train), ".-", markersize=3, label="training loss")
        if val:
            ax.plot(*zip(*val), "o-", markersize=4, label="validation loss")
        ax.set_title(name)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _answer(text: str) -> str:
    """An answer as the report shows it; an empty one says so (a base model often writes only newlines)."""
    return repr(text[:300]) if text.strip() else "(nothing: only whitespace or the end-of-text token)"


def render(report: dict) -> str:
    """``report.md`` from ``report.json``."""
    hw, parts = report["hardware"], [f"# Pipeline report\n\n`{report['pipeline']}`, {report['created']}\n"]
    parts.append(f"Machine: {hw['cpu']}, {hw['cores']} cores, GPUs: {', '.join(hw['gpus']) or 'none'}, native bf16: "
                 f"{'yes' if hw['native_bf16'] else 'no'}; Python {hw['python']}; "
                 + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".\n")  # fmt: skip
    parts.append("## Stages\n\n" + _table(
        ["stage", "recipe", "status", "wall time (s)", "tokens", "tokens/s"],
        [[s["stage"], s["recipe"], s["status"], round(s["seconds"], 1) if s["seconds"] else None, s["tokens"],
          round(s["tokens_per_second"], 1) if s["tokens_per_second"] else None] for s in report["stages"]],
    ) + "\n")  # fmt: skip
    if report.get("losses"):
        parts.append(f"![loss curves]({report['losses']})\n")
    evaluation = report.get("evaluation")
    if evaluation:
        columns = [c for c in evaluation["columns"] if c not in COUNT_METRICS]
        parts.append("## Evaluation\n\n" + _table(
            ["checkpoint", *columns], [[r["stage"], *(r["metrics"].get(c) for c in columns)] for r in evaluation["rows"]]
        ) + "\n")  # fmt: skip
        if report.get("evaluation_chart"):
            parts.append(f"![evaluation]({report['evaluation_chart']})\n")
    if report.get("quality"):
        parts.append("## Quality\n\n" + _table(["figure", "stage", "value"],
                                               [[q["figure"], q["stage"], q["value"]] for q in report["quality"]]) + "\n")  # fmt: skip
    answers = report.get("answers") or []
    if answers:
        names = [k for k in answers[0] if k not in ("instruction", "input")]
        parts.append("## Held-out prompts\n")
        for a in answers:
            parts.append(f"**{a['instruction']}**" + (f" — {a['input']}" if a["input"] else "") + "\n")
            parts += [f"- *{name}*: {_answer(a[name])}" for name in names]
            parts.append("")
    parts.append("## Settings\n")
    for s in report["stages"]:
        parts.append(f"- **{s['stage']}**: `hfpipe {s['recipe']} {' '.join(s['args'])}`")
    return "\n".join(parts) + "\n"


def write_report(out: Path, stages, n_prompts: int = 5) -> Path:
    """Gather every stage's figures into ``report.json``, draw the charts, write ``report.md``; returns its path."""
    out = Path(out)
    report = {
        "pipeline": _json(out / "pipeline.json").get("pipeline"),
        "created": time.strftime("%Y-%m-%d %H:%M"),
        "hardware": hardware(),
        "versions": versions(),
        "stages": stage_rows(out, stages),
        "quality": quality_table(out, stages),
    }
    if plot_losses(out, stages, out / "report_losses.png"):
        report["losses"] = "report_losses.png"
    evaluate = next((s for s in stages if s.recipe == "evaluate"), None)
    table = _json(out / evaluate.name / "table.json") if evaluate is not None else {}
    if table:
        report["evaluation"] = table
        if (out / evaluate.name / "table.png").is_file():
            report["evaluation_chart"] = f"{evaluate.name}/table.png"
    try:
        report["answers"] = side_by_side_answers(out, stages, n_prompts)
    except (OSError, ValueError) as err:  # a missing model must not cost the report
        logger.warning("no side-by-side answers: %s", err)
    write_json_atomically(report, out / "report.json")
    path = write_file_atomically(lambda tmp: tmp.write_text(render(report)), out / "report.md")
    logger.info("report card: %s", path)
    return path
