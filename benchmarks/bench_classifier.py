"""Spam classifier benchmark: pretrain a small GPT with this pipeline, then fine-tune it on SMS spam.

    python benchmarks/bench_classifier.py --data ../shared/data/sms_spam_collection.tsv

1. Split the SMS Spam Collection as the book does (747 ham + 747 spam, 70/10/20 = 1,045 / 149 / 300, seed 123).
2. Pretraining corpus: every SMS text that is not in the validation or test split (no leakage; the labels are
   not used). ``recipes/pretrain.py`` trains a byte-level BPE on it and a small GPT from scratch.
3. ``recipes/finetune_classifier.py`` fine-tunes that checkpoint twice: full fine-tuning and LoRA.

Each step runs as its own process; wall times include start-up, data preparation, evaluation and saving.
The total of a strategy is corpus + pretraining + its fine-tuning. Writes ``benchmarks/results/classifier.md``.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hfpipe.classification import balance_classes, encode_labels, load_labeled_dataset, split_dataset  # noqa: E402
from hfpipe.hardware import fast_bf16_available  # noqa: E402
from hfpipe.loading import read_config  # noqa: E402
from hfpipe.recipe_args import parse_recipe_args  # noqa: E402

COMMON = ["--use_cpu", "true", "--report_to", "none", "--seed", "123", "--save_strategy", "no"]
PRETRAIN = [
    "--vocab_size", "2048", "--min_frequency", "2",
    "--model_preset", "tiny", "--context_length", "128", "--emb_dim", "192", "--n_heads", "4", "--n_layers", "4",
    "--drop_rate", "0.0", "--tie_word_embeddings", "true",
    "--sample_by", "line", "--block_size", "128", "--validation_size", "0.02", "--dedup", "true",
    "--max_steps", "250", "--per_device_train_batch_size", "16", "--learning_rate", "2e-3",
    "--warmup_steps", "20", "--lr_scheduler_type", "cosine_with_min_lr", "--weight_decay", "0.1",
    "--adam_beta2", "0.99", "--logging_steps", "25", "--eval_strategy", "no", "--dataloader_drop_last", "true",
    "--sample_max_new_tokens", "20", "--sample_prompt", "Free",
]  # fmt: skip
# The recipe's configs (book split: balanced, 70/10/20, seed 123), full fine-tuning instead of the last block.
STRATEGIES = {
    "full": ["--config", "recipes/configs/classifier_sms_spam.yaml", "--strategy", "full", "--learning_rate", "1e-4"],
    "lora": ["--config", "recipes/configs/classifier_sms_spam_lora.yaml", "--learning_rate", "2e-3"],
}  # fmt: skip
FINETUNE = ["--num_train_epochs", "3", "--eval_strategy", "no", "--logging_steps", "50"]


def write_corpus(data: str, path: Path) -> dict:
    """Every SMS text outside the book's validation/test split, one per line (labels are not written)."""
    ds, id2label = encode_labels(load_labeled_dataset(data, column_names=["label", "text"]), ["ham", "spam"])
    splits = split_dataset(balance_classes(ds, 123), 0.7, 0.1, 123, id2label)
    held_out = set(splits["validation"]["text"]) | set(splits["test"]["text"])
    texts = [" ".join(t.split()) for t in ds["text"] if t not in held_out]
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return {"messages": len(texts), "chars": sum(map(len, texts)), "held_out": len(held_out)}


def pretrain_command(corpus: Path, pretrained: Path, bf16: str) -> list[str]:
    """``recipes/pretrain.py`` on the corpus; ``bf16`` is ``true``, ``false`` or ``auto`` (the recipe decides)."""
    precision = [] if bf16 == "auto" else ["--bf16", bf16]
    return ["recipes/pretrain.py", "--dataset_name", str(corpus), "--output_dir", str(pretrained),
            *PRETRAIN, *COMMON, *precision]  # fmt: skip


def finetune_command(name: str, pretrained: Path, data: str, out: Path, bf16: str) -> list[str]:
    """``recipes/finetune_classifier.py`` with strategy ``name`` from the pretrained checkpoint."""
    precision = [] if bf16 == "auto" else ["--bf16", bf16]
    return ["recipes/finetune_classifier.py", *STRATEGIES[name][:2], "--model_name_or_path", str(pretrained),
            "--dataset_name", data, "--output_dir", str(out), *STRATEGIES[name][2:], *FINETUNE, *COMMON,
            *precision]  # fmt: skip


def check_commands(commands: list[list[str]]) -> None:
    """Parse each recipe command with the recipe's own ``ARGUMENTS`` (from the repository root, as ``run``
    does): a flag that a recipe no longer has fails here, before minutes of pretraining."""
    import importlib.util

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for script, *args in commands:
            spec = importlib.util.spec_from_file_location(f"_bench_{Path(script).stem}", ROOT / script)
            recipe = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(recipe)
            parse_recipe_args(recipe.ARGUMENTS, args)
    finally:
        os.chdir(cwd)


def run(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` (output to ``log``); returns its wall time and CPU time (user + system) in seconds."""
    start, usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\nsee {log}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    return time.perf_counter() - start, cpu


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sms_spam_collection.tsv")
    parser.add_argument("--work_dir", default="outputs/bench_classifier")
    parser.add_argument("--out", default="benchmarks/results/classifier.md")
    parser.add_argument(
        "--bf16",
        choices=["auto", "true", "false"],
        default="auto",
        help="bf16 autocast: auto = where the CPU computes bf16 natively (the recipes' default)",
    )
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    opts = parser.parse_args(argv)
    data = str(Path(opts.data).resolve())
    work = (ROOT / opts.work_dir).resolve()
    if work.exists():
        raise SystemExit(f"{work} exists; remove it or pass another --work_dir (pretraining would resume)")
    py, load_before = [sys.executable], os.getloadavg()
    corpus, pretrained = work / "sms_pretrain_corpus.txt", work / "pretrained"
    pre_cmd = [*py, *pretrain_command(corpus, pretrained, opts.bf16)]
    ft_cmds = {
        name: [*py, *finetune_command(name, pretrained, data, work / f"classifier-{name}", opts.bf16)]
        for name in opts.strategies
    }
    check_commands([pre_cmd[1:], *(cmd[1:] for cmd in ft_cmds.values())])
    work.mkdir(parents=True)

    start = time.perf_counter()
    stats = write_corpus(data, corpus)
    t_corpus = time.perf_counter() - start
    print(f"pretraining on {stats['messages']:,} messages ({stats['chars']:,} chars) ...", flush=True)
    wall, cpu = run(pre_cmd, work / "pretrain.log")
    pre = (t_corpus + wall, cpu)
    print(f"pretraining: {pre[0]:.0f} s wall, {pre[1]:.0f} s CPU", flush=True)

    rows = []
    for name in opts.strategies:
        out, cmd = work / f"classifier-{name}", ft_cmds[name]
        ft = run(cmd, work / f"finetune-{name}.log")
        m = json.loads((out / "results.json").read_text())
        rows.append((name, ft, m, cmd))
        print(
            f"{name}: fine-tuning {ft[0]:.0f} s, total {pre[0] + ft[0]:.0f} s, test accuracy {m['test']['accuracy']:.2%}"
        )

    cfg = read_config(str(pretrained))
    bf16 = (
        opts.bf16 if opts.bf16 != "auto" else f"auto ({'on' if fast_bf16_available() else 'off'} on this CPU)"
    )
    load_after = os.getloadavg()
    lines = [
        "# Spam classifier: pretrained by hfpipe, then fine-tuned (full and LoRA)",
        "",
        f"Machine: {os.cpu_count()} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"bf16 autocast {bf16}. Load average (1 min) {load_before[0]:.1f} at the start, {load_after[0]:.1f} "
        "at the end: wall times grow with other work on the machine, CPU times (user + system of the processes) "
        "much less.",
        f"Data: SMS Spam Collection, balanced 747 + 747, split 1,045 / 149 / 300 (seed 123). Pretraining corpus: "
        f"{stats['messages']:,} SMS texts ({stats['chars']:,} characters) that are not in the validation or test "
        "split, labels unused.",
        f"Model: {cfg['n_layers']} layers x {cfg['emb_dim']} dims, context {cfg['context_length']}, "
        f"BPE vocabulary {cfg['vocab_size']:,}, trained from scratch by `recipes/pretrain.py` (tokenizer included).",
        "Target: test accuracy >= 95 % within 10 minutes (pretraining + fine-tuning) on 2 CPU cores. "
        "The book: 95.67 % (GPT-2 124M, last block), 96.67 % (LoRA).",
        "",
        "| strategy | trained / all params | pretraining wall (CPU) s | fine-tuning wall (CPU) s | total wall s "
        "| test accuracy | precision | recall | F1 | validation accuracy | test confusion [[TN, FP], [FN, TP]] |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, ft, m, _ in rows:
        t = m["test"]
        lines.append(
            f"| {name} | {m['trainable_params']:,} / {m['total_params']:,} | {pre[0]:.0f} ({pre[1]:.0f}) "
            f"| {ft[0]:.0f} ({ft[1]:.0f}) | {pre[0] + ft[0]:.0f} | {t['accuracy']:.2%} | {t['precision']:.4f} "
            f"| {t['recall']:.4f} | {t['f1']:.4f} | {m['validation']['accuracy']:.2%} | {t['confusion_matrix']} |"
        )
    lines += ["", "Reproduce (from the repository root):", "", "```"]
    lines += [shlex.join(["python", "benchmarks/bench_classifier.py", "--data", opts.data])]
    lines += [
        "```",
        "",
        "which runs (paths under `--work_dir`):",
        "",
        "```",
        shlex.join(["python", *pre_cmd[1:]]),
    ]
    lines += [shlex.join(["python", *cmd[1:]]) for *_, cmd in rows] + ["```", ""]
    Path(ROOT / opts.out).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / opts.out).write_text("\n".join(lines))
    print(f"report: {ROOT / opts.out}")


if __name__ == "__main__":
    main()
