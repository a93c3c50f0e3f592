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

from .io import write_file_atomically, write_json_atomically

logger = logging.getLogger(__name__)
LIBRARIES = ("hfpipe", "torch", "transformers", "tokenizers", "datasets", "accelerate", "peft", "trl",
             "huggingface_hub", "safetensors")  # fmt: skip
# (figure, stage recipe, key in its results.json, what it measures) of the quality table
QUALITY = (
    ("eos share", "sft", "eos_share",
     "share of SFT's {test_answers} test answers that ended with the end-of-text token (it learned to stop)"),
    ("template leak share", "sft", "template_leak_share",
     "share of those answers that ran on into template text (### Instruction, role headers)"),
    ("eos share", "dpo", "eos_share", "the same after DPO, on DPO's test prompts"),
    ("reward accuracy", "reward_model", "test_accuracy",
     "share of held-out preference pairs where the reward model scores the chosen answer higher"),
    ("reward margin", "reward_model", "test_margin", "mean reward of the chosen minus the rejected answer, held out"),
    ("DPO reward accuracy", "dpo", "test_rewards/accuracies",
     "share of held-out pairs where DPO's implicit reward prefers the chosen answer"),
    ("DPO margin", "dpo", "test_rewards/margins", "mean implicit-reward margin, chosen minus rejected, held out"),
    ("int8 size / original", "quantize", None, "size on disk of the int8 copy over the original's"),
)  # fmt: skip
QUANTIZE_TEXT = (
    "{before:.4g} -> {after:.4g} on {text} cut into disjoint blocks of up to 256 tokens: each token sees less "
    "context than in the evaluation table's sliding window, so compare these two with each other, not with that "
    "table"
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


def architecture(out: Path, stages) -> str | None:
    """The layout of the first GPT a stage saved, e.g. ``llama (rope, rmsnorm, swiglu, ...)``; None if none."""
    from .models.gpt.configuration_gpt import GPTConfig, describe_architecture

    for stage in stages:
        saved = _json(out / stage.name / "config.json")
        if saved.get("model_type") == GPTConfig.model_type:
            return describe_architecture(GPTConfig.from_dict(saved))
    return None


def stage_rows(out: Path, stages) -> list[dict]:
    """Per stage: recipe, status, wall time (all attempts), attempts, tokens, tokens/s, results, settings."""
    state = _json(out / "pipeline.json").get("stages", {})
    rows = []
    for stage in stages:
        saved = state.get(stage.name, {})
        results = _json(out / stage.name / "results.json")
        metrics = results.get("metrics", {})
        attempts = [{"seconds": a.get("seconds"), "outcome": a.get("outcome", "running"), "action": a.get("action")}
                    for a in saved.get("attempts", [])]  # fmt: skip
        rows.append({
            "stage": stage.name, "recipe": stage.recipe, "status": saved.get("status", "not run"),
            "seconds": saved.get("seconds"), "attempts": attempts, "tokens": metrics.get("tokens_seen"),
            "tokens_per_second": metrics.get("train_tokens_per_second"), "metrics": metrics,
            "args": saved.get("args", stage.args), "optimizer": results.get("optimizer"),
        })  # fmt: skip
    return rows


def _stage_arg(stage, key: str) -> str | None:
    flag = f"--{key}"
    return stage.args[stage.args.index(flag) + 1] if flag in stage.args[:-1] else None


def quality_table(out: Path, stages) -> list[dict]:
    """The checkpoints' figures from their stages' results (eos, leakage, reward accuracy, DPO margin, int8,
    GGUF), each with one line on what it measures and on which text."""
    from .evaluation.run import LOCAL_TEXT

    by_recipe = {}
    for stage in stages:
        by_recipe.setdefault(stage.recipe, stage)
    rows = []
    for column, recipe, key, what in QUALITY:
        stage = by_recipe.get(recipe)
        metrics = _json(out / stage.name / "results.json").get("metrics", {}) if stage else {}
        if key is None and "int8_bytes" in metrics:
            value = metrics["int8_bytes"] / metrics["original_bytes"]
        else:
            value = metrics.get(key) if key else None
        if value is not None:
            count = int(metrics.get("test_answers", 0))
            rows.append({"figure": column, "stage": stage.name, "value": value,
                         "what": what.format(test_answers=count or "")})  # fmt: skip
    quantize = by_recipe.get("quantize")
    metrics = _json(out / quantize.name / "results.json").get("metrics", {}) if quantize else {}
    if "original_perplexity" in metrics and "int8_perplexity" in metrics:
        before, after = metrics["original_perplexity"], metrics["int8_perplexity"]
        text = _stage_arg(quantize, "eval_file") or f"hfpipe's local text ({LOCAL_TEXT.name})"
        rows.append({"figure": "int8 perplexity / original", "stage": quantize.name, "value": after / before,
                     "what": QUANTIZE_TEXT.format(before=before, after=after, text=text)})  # fmt: skip
    gguf = by_recipe.get("export_gguf")
    if gguf is not None and gguf.output.is_file():
        rows.append({"figure": "GGUF size (MB)", "stage": gguf.name, "value": gguf.output.stat().st_size / 1e6,
                     "what": "the llama.cpp file of the last model"})  # fmt: skip
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


def _attempts_line(stage: dict) -> str:
    """For a stage that took more than one attempt: each attempt's outcome and wall time."""
    attempts = stage.get("attempts") or []
    if len(attempts) < 2:
        return ""
    how = {"resume": "resumed from its last checkpoint", "restart": "started again"}
    each = "; ".join(
        (f"{how.get(a.get('action'), 'resumed')}, " if i else "")
        + f"{a['outcome']} after {_fmt(round(a['seconds'], 1)) if a['seconds'] is not None else '?'} s"
        for i, a in enumerate(attempts)
    )
    return f"- {stage['stage']} took {len(attempts)} attempts: {each}."


def _evaluation_section(evaluation: dict, chart: str | None) -> str:
    """The evaluation table with readable column names, then one line per column on what it measures."""
    from .evaluation.metric_notes import describe, label, shown

    rows, columns = evaluation["rows"], shown(evaluation["columns"])
    table = _table(["checkpoint", *(label(c) for c in columns)],
                   [[r["stage"], *(r["metrics"].get(c) for c in columns)] for r in rows])  # fmt: skip
    texts = {r.get("perplexity_text") for r in rows} - {None}
    text = " and ".join(sorted(texts)) or None
    notes = [f"- **{label(c)}** {describe(c, rows[0]['metrics'], text)}" for c in columns]
    section = "## Evaluation\n\n" + table + "\n\n" + "\n".join(notes) + "\n"
    return section + (f"\n![evaluation]({chart})\n" if chart else "")


def render(report: dict) -> str:
    """``report.md`` from ``report.json``."""
    hw, parts = report["hardware"], [f"# Pipeline report\n\n`{report['pipeline']}`, {report['created']}\n"]
    parts.append(f"Machine: {hw['cpu']}, {hw['cores']} cores, GPUs: {', '.join(hw['gpus']) or 'none'}, native bf16: "
                 f"{'yes' if hw['native_bf16'] else 'no'}; Python {hw['python']}; "
                 + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".\n")  # fmt: skip
    if report.get("architecture"):
        trained = ", ".join(f"{s['stage']} {s['optimizer']}" for s in report["stages"] if s.get("optimizer"))
        parts.append(f"Model architecture: {report['architecture']}." + (f" Optimizers: {trained}." if trained else "")
                     + "\n")  # fmt: skip
    parts.append("## Stages\n\n" + _table(
        ["stage", "recipe", "status", "wall time (s)", "attempts", "tokens", "tokens/s"],
        [[s["stage"], s["recipe"], s["status"], round(s["seconds"], 1) if s["seconds"] else None,
          len(s.get("attempts") or []) or None, s["tokens"],
          round(s["tokens_per_second"], 1) if s["tokens_per_second"] else None] for s in report["stages"]],
    ) + "\n")  # fmt: skip
    parts += [line for s in report["stages"] if (line := _attempts_line(s))]
    if any(len(s.get("attempts") or []) > 1 for s in report["stages"]):
        parts.append("")
    if report.get("losses"):
        parts.append(f"![loss curves]({report['losses']})\n")
    if report.get("evaluation"):
        parts.append(_evaluation_section(report["evaluation"], report.get("evaluation_chart")))
    if report.get("quality"):
        parts.append("## Quality\n\n" + _table(["figure", "stage", "value", "what it measures"],
                                               [[q["figure"], q["stage"], q["value"], q.get("what", "")]
                                                for q in report["quality"]]) + "\n")  # fmt: skip
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
        "architecture": architecture(out, stages),
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
