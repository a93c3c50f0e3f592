"""The steps of benchmarks/gpu_check.sh: GPT-2 124M pretraining on GPUs, hfpipe's recipe against transformers'
GPT2LMHeadModel, and the FSDP config. Each step writes JSON into --workdir; `table` prints one table.

    python benchmarks/bench_gpu.py prepare --workdir W          # GPT-2's tokenizer, 1024-token blocks
    python benchmarks/bench_gpu.py throughput --workdir W [--torch-compile]   # 1 GPU, both sides, bf16, SDPA
    accelerate launch --config_file accelerate_configs/fsdp.yaml benchmarks/bench_gpu.py fsdp --workdir W
    python benchmarks/bench_gpu.py table --workdir W

The timing is bench_pretrain.py's: the same recipe flags (``recipe_args``), the same two runners (the real
recipe, ``pretrain.main``, and a plain Trainer on GPT2LMHeadModel with the recipe's own TrainingArguments)
and the same ThroughputCallback on both sides; runs are interleaved and the hfpipe/GPT-2 ratio is the median
of back-to-back pairs. MFU is against the bf16 matmul peak measured on the GPU at the start.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_pretrain import SHARED, Setup, recipe_args, run_gpt2, run_hfpipe, throughput_from_logs
from datasets import Dataset, DatasetDict

from hfpipe.data.packing import pack_ids
from hfpipe.data.prepare import save_packed_dataset
from hfpipe.data.stdlib_corpus import stdlib_corpus_path
from hfpipe.loading import load_tokenizer
from hfpipe.tokenization import save_tokenizer
from hfpipe.training.throughput import flops_per_token, measure_matmul_peak

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "gpu_check.md"
# GPT-2 124M: 12 x 768, 12 heads, context 1024 (QKV bias, tied embeddings: recipe_args sets them), batch 8
SETUPS = {
    "gpt2-124m": Setup(12, 768, 12, 1024, 0, 8, 30, 10, 2, None, 8192, 2.0),
    "tiny": Setup(2, 64, 2, 64, 0, 4, 6, 2, 1, 200_000, 256, 0.2),  # to try the steps on a CPU
}
SIDES = ("hfpipe", "gpt2")


def default_tokenizer() -> str:
    local = SHARED / "gpt2-tokenizer"
    return str(local) if local.is_dir() else "openai-community/gpt2"


def default_text() -> Path:
    local = SHARED / "tinyshakespeare.txt"
    return local if local.is_file() else stdlib_corpus_path()


def read_text(path: Path, chars: int | None) -> str:
    """A .txt file as it is, or the ``text`` fields of a .jsonl file joined by GPT-2's end-of-text."""
    if path.suffix == ".jsonl":
        text = "<|endoftext|>".join(json.loads(line)["text"] for line in path.open(encoding="utf-8"))
    else:
        text = path.read_text(encoding="utf-8")
    return text[:chars]


def prepare(args) -> dict:
    """The tokenizer and the text's disjoint blocks of the setup's context, saved in the workdir."""
    s, work = SETUPS[args.size], args.workdir
    tokenizer = load_tokenizer(args.tokenizer)
    text = read_text(args.text, s.text_chars)
    ids = np.array(tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int32)
    blocks = pack_ids(ids, s.block_size, s.block_size)
    train = Dataset.from_dict({"input_ids": blocks.tolist(), "labels": blocks.tolist()})
    save_packed_dataset(DatasetDict({"train": train}), work / "packed", {"block_size": s.block_size})
    save_tokenizer(tokenizer, work / "tokenizer")
    return {"size": args.size, "text": str(args.text), "tokenizer": args.tokenizer, "blocks": len(blocks)}


def peak_flops(s: Setup) -> float:
    """bf16 matmul FLOP/s of this device (the GPU when there is one), the best of repeated runs."""
    return measure_matmul_peak(torch.bfloat16, size=s.peak_size, seconds=s.peak_seconds)


def modern_flags(args) -> list[str]:
    """The hfpipe side's architecture and optimizer (the book's and AdamW unless given)."""
    flags = ["--architecture", args.architecture] if args.architecture else []
    return flags + (["--optimizer", args.optimizer] if args.optimizer else [])


def throughput(args) -> dict:
    """Interleaved runs of the recipe and of GPT2LMHeadModel + Trainer, bf16 autocast, SDPA, on one device."""
    s = SETUPS[args.size]
    s = dataclasses.replace(s, repeats=args.repeats or s.repeats)
    work, peak = args.workdir, peak_flops(s)
    tokenizer = load_tokenizer(work / "tokenizer")
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for r in range(s.repeats):
        for side in SIDES if r % 2 == 0 else reversed(SIDES):
            flags = recipe_args(
                s, work / "tokenizer", work / "packed", work / f"{args.name}-{side}-{r}", peak, True
            )
            flags += ["--torch_compile", "true"] if args.torch_compile else []
            if side == "hfpipe":
                flags += modern_flags(args)
                runs[side].append(run_hfpipe(flags, s))
            else:
                runs[side].append(run_gpt2(flags, len(tokenizer), tokenizer.eos_token_id))
            print(
                f"[bench_gpu] {args.name} {side} round {r + 1}: {runs[side][-1]['steady']:,.0f} tok/s",
                flush=True,
            )
    return {
        "name": args.name,
        "size": args.size,
        "torch_compile": args.torch_compile,
        "architecture": args.architecture or "book",
        "optimizer": args.optimizer or "adamw",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "peak_flops": peak,
        "flops_per_token": runs["hfpipe"][0]["flops_per_token"],
        "params": runs["hfpipe"][0]["params"],
        "tokens_per_step": s.batch * s.block_size,
        "steady": {side: statistics.median(r["steady"] for r in runs[side]) for side in SIDES},
        "ratio": statistics.median(a["steady"] / b["steady"] for a, b in zip(runs["hfpipe"], runs["gpt2"])),
        "runs": runs,
    }


def fsdp(args) -> dict | None:
    """The recipe under ``accelerate launch --config_file accelerate_configs/fsdp.yaml`` on every GPU here."""
    sys.path.insert(0, str(REPO / "recipes"))
    import pretrain

    s = SETUPS[args.size]
    work = args.workdir
    out = work / "fsdp-run"
    flags = recipe_args(s, work / "tokenizer", work / "packed", out, peak_flops(s), True)
    flags += ["--max_steps", str(args.max_steps), "--overwrite_output_dir", "true"]
    trainer = pretrain.main(flags)
    if not trainer.is_world_process_zero():
        return None
    tokens_per_step = s.batch * s.block_size * trainer.args.world_size
    config = json.loads((out / "config.json").read_text())
    return {
        "fsdp": trainer.is_fsdp_enabled,
        "fsdp_version": trainer.accelerator.state.fsdp_plugin.fsdp_version
        if trainer.is_fsdp_enabled
        else None,
        "world_size": trainer.args.world_size,
        "steps": trainer.state.global_step,
        "steady": throughput_from_logs(trainer, tokens_per_step)["steady"],
        "flops_per_token": flops_per_token(trainer.model.config, s.block_size),
        "peak_flops": trainer.args.peak_tflops * 1e12,
        "saved_model_loads_as": config["auto_map"]["AutoModelForCausalLM"],
    }


def render(work: Path, elapsed: dict) -> str:
    """One table from the JSON files the steps wrote (a missing one is a row saying so)."""

    def load(name: str) -> dict | None:
        path = work / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    eager, compiled, sharded, modern = load("eager"), load("compiled"), load("fsdp"), load("modern")
    first = eager or compiled
    lines = [
        "# GPU check: pretraining throughput, hfpipe vs GPT2LMHeadModel, and FSDP2",
        "",
        (
            f"Model: {first['size']}, {first['params']:,} parameters. Device: {first['device']}; torch "
            f"{torch.__version__}; "
            f"{first['flops_per_token'] / 1e6:,.0f} MFLOP per token (6 N + 12 L T d); batch "
            f"{first['tokens_per_step']:,} tokens per GPU; bf16 autocast, SDPA; MFU against the measured bf16 "
            f"matmul peak, {first['peak_flops'] / 1e12:,.4g} TFLOP/s. Tokens/s: medians of interleaved runs, "
            "steady (first log interval excluded); hfpipe/GPT-2: median of back-to-back pairs."
        )
        if first
        else "No single-GPU run finished.",
        "",
        "| run | hfpipe tokens/s | GPT2LMHeadModel tokens/s | hfpipe / GPT-2 | hfpipe MFU | GPT-2 MFU |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    one = "1 GPU" if first and first["device"] != "cpu" else "1 device"
    modern_label = f"{one}, eager, {modern['architecture']} + {modern['optimizer']}" if modern else ""
    for label, r in ((f"{one}, eager", eager), (f"{one}, torch_compile", compiled), (modern_label, modern)):
        if r is None and label == modern_label:
            lines.append(f"| {one}, eager, the modern preset | not run | | | | |")
            continue
        if r is None:
            lines.append(f"| {label} | not run | | | | |")
            continue
        mfu = {side: r["steady"][side] * r["flops_per_token"] / r["peak_flops"] for side in SIDES}
        lines.append(
            f"| {label} | {r['steady']['hfpipe']:,.0f} | {r['steady']['gpt2']:,.0f} | {r['ratio']:.2f}x | "
            f"{mfu['hfpipe']:.1%} | {mfu['gpt2']:.1%} |"
        )
    if sharded is None:
        lines.append("| FSDP2, accelerate_configs/fsdp.yaml | not run | | | | |")
    else:
        n = sharded["world_size"]
        mfu = sharded["steady"] / n * sharded["flops_per_token"] / sharded["peak_flops"]
        fsdp = f"FSDP{sharded['fsdp_version']}" if sharded["fsdp"] else "**not FSDP**"
        lines.append(
            f"| {fsdp}, accelerate_configs/fsdp.yaml, {n} GPU(s), eager, {sharded['steps']} steps | "
            f"{sharded['steady']:,.0f} (all GPUs) | | | {mfu:.1%} | |"
        )
        lines += [
            "",
            f"The FSDP run's final model saves as `{sharded['saved_model_loads_as']}` in its auto_map.",
        ]
    if modern and eager:
        lines += ["", f"The modern preset ({modern['architecture']}, {modern['optimizer']}) trains at "
                  f"{modern['steady']['hfpipe'] / eager['steady']['hfpipe']:.2f}x the book preset's tokens/s "
                  "(AdamW), the same width, depth and batch; GPT2LMHeadModel is the peer of both rows."]  # fmt: skip
    if elapsed:
        lines += ["", "Step times: " + ", ".join(f"{k} {v:.0f} s" for k, v in elapsed.items()) + "."]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    for name in ("prepare", "throughput", "fsdp", "table"):
        step = steps.add_parser(name)
        step.add_argument("--workdir", type=Path, required=True, help="where the steps share their files")
        step.add_argument("--size", choices=list(SETUPS), default="gpt2-124m")
    steps.choices["prepare"].add_argument(
        "--tokenizer", default=default_tokenizer(), help="GPT-2's by default"
    )
    steps.choices["prepare"].add_argument("--text", type=Path, default=default_text(), help=".txt or .jsonl")
    steps.choices["throughput"].add_argument("--name", default="eager", help="names the result file")
    steps.choices["throughput"].add_argument("--torch-compile", action="store_true")
    steps.choices["throughput"].add_argument("--repeats", type=int, default=None, help="rounds of both sides")
    steps.choices["throughput"].add_argument(
        "--architecture", default=None, help="hfpipe side: book, llama, ..."
    )
    steps.choices["throughput"].add_argument("--optimizer", default=None, help="hfpipe side: adamw or muon")
    steps.choices["fsdp"].add_argument("--max_steps", type=int, default=20)
    steps.choices["table"].add_argument("--output", type=Path, default=RESULTS, help="markdown file to write")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    times = args.workdir / "elapsed.json"
    elapsed = json.loads(times.read_text()) if times.is_file() else {}
    if args.step == "table":
        table = render(args.workdir, elapsed)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(table)
        print(table)
        return
    start = time.perf_counter()
    result = {"prepare": prepare, "throughput": throughput, "fsdp": fsdp}[args.step](args)
    if result is not None and int(os.environ.get("RANK", "0")) == 0:
        name = args.name if args.step == "throughput" else args.step
        (args.workdir / f"{name}.json").write_text(json.dumps(result, indent=1))
        elapsed[name] = time.perf_counter() - start
        times.write_text(json.dumps(elapsed))


if __name__ == "__main__":
    main()
