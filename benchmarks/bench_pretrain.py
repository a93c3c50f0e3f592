"""Training throughput of recipes/pretrain.py against a plain Trainer on GPT2LMHeadModel, MFU, and the
character-level tinyshakespeare reference run.

    python benchmarks/bench_pretrain.py                         # 6 x 384, ctx 256, then tinyshakespeare
    python benchmarks/bench_pretrain.py --without-shakespeare   # the throughput comparison only
    python benchmarks/bench_pretrain.py --quick                 # tiny dims, few steps, no tinyshakespeare

Both sides train on the same pre-packed blocks (a BPE tokenizer trained on tinyshakespeare, packed once and
saved; the recipe loads them with --packed_dataset_path), with the same TrainingArguments (the recipe's
own PretrainConfig parsed from the same flags; eval and saving off) and models of the same size (QKV bias,
tied embeddings, dropout 0, SDPA attention). The hfpipe side is the real recipe, ``pretrain.main([...])``.
Runs are interleaved (A B B A ...) in one process and medians reported, so that load from other processes
hits both alike: compare the ratios. Writes ``benchmarks/results/pretrain.md`` and prints it.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    set_seed,
)

from hfpipe.data.packing import pack_ids
from hfpipe.data.prepare import load_packed_dataset, save_packed_dataset
from hfpipe.tokenization import load_tokenizer, save_tokenizer, train_bpe_tokenizer
from hfpipe.training.throughput import measure_matmul_peak
from hfpipe.training.trainer import collate_blocks

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes"))
import pretrain  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "pretrain.md"
SHARED = REPO.parent / "shared" / "data"
SHAKESPEARE_CONFIG = REPO / "recipes" / "configs" / "shakespeare_char.yaml"
SHAKESPEARE_REFERENCE = 1.88  # nanoGPT's validation loss for this config


@dataclasses.dataclass
class Setup:
    n_layers: int
    emb_dim: int
    n_heads: int
    block_size: int
    vocab_size: int
    batch: int
    steps: int
    logging_steps: int  # tokens/s is measured over the log intervals after the first (warm-up excluded)
    repeats: int  # runs of each side
    text_chars: int | None  # tinyshakespeare characters used (None: all)
    peak_size: int  # matmul size for the peak
    peak_seconds: float


FULL = Setup(6, 384, 6, 256, 4096, 4, 16, 4, 3, None, 2048, 2.0)
QUICK = Setup(2, 64, 2, 64, 512, 4, 4, 2, 2, 100_000, 1024, 0.3)


def progress(step: str) -> None:
    print(f"[bench_pretrain] {time.strftime('%H:%M:%S')} {step}", file=sys.stderr, flush=True)


def prepare_data(s: Setup, text: str, work: Path) -> tuple[Path, Path, int]:
    """Train a BPE tokenizer on ``text`` and save it and the text's disjoint blocks; returns their paths and
    the vocabulary size."""
    tokenizer = train_bpe_tokenizer([text], vocab_size=s.vocab_size)
    tok_dir = save_tokenizer(tokenizer, work / "tokenizer")
    ids = np.array(tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int32)
    blocks = pack_ids(ids, s.block_size, s.block_size)
    if len(blocks) < s.batch * s.steps:
        progress(f"note: {len(blocks)} blocks < {s.batch * s.steps} needed, the Trainer runs extra epochs")
    train = Dataset.from_dict({"input_ids": blocks.tolist(), "labels": blocks.tolist()})
    data_dir = save_packed_dataset(
        DatasetDict({"train": train}), work / "packed", {"block_size": s.block_size}
    )
    return tok_dir, data_dir, len(tokenizer)


def recipe_args(s: Setup, tok_dir: Path, data_dir: Path, out: Path, peak: float) -> list[str]:
    """Flags of the recipe for the throughput runs; the GPT-2 side parses the same ones."""
    flags = {
        "packed_dataset_path": data_dir,
        "tokenizer_name_or_path": tok_dir,
        "output_dir": out,
        "model_preset": "tiny",
        "context_length": s.block_size,
        "emb_dim": s.emb_dim,
        "n_heads": s.n_heads,
        "n_layers": s.n_layers,
        "drop_rate": 0.0,
        "qkv_bias": True,
        "tie_word_embeddings": True,
        "attn_implementation": "sdpa",
        "block_size": s.block_size,
        "max_steps": s.steps,
        "per_device_train_batch_size": s.batch,
        "learning_rate": 6e-4,
        "warmup_steps": 2,
        "logging_steps": s.logging_steps,
        "eval_strategy": "no",
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "bf16": False,
        "seed": 0,
        "dataloader_num_workers": 0,
        "peak_tflops": peak / 1e12,
        "sample_max_new_tokens": 1,
    }
    text = lambda v: str(v).lower() if isinstance(v, bool) else str(v)  # noqa: E731
    return [item for key, value in flags.items() for item in (f"--{key}", text(value))]


def steady_tokens_per_second(log_times: list[float], tokens_per_interval: int) -> float:
    """Tokens/s between the first and the last training log (the warm-up before the first is excluded)."""
    return tokens_per_interval * (len(log_times) - 1) / (log_times[-1] - log_times[0])


def run_hfpipe(args: list[str]) -> dict:
    """One run of the recipe: tokens/s from its own logs (after the first) and from train_runtime."""
    trainer = pretrain.main(args)
    history = trainer.state.log_history
    rates = [h["tokens_per_second"] for h in history if "tokens_per_second" in h][1:]
    runtime = next(h["train_runtime"] for h in history if "train_runtime" in h)
    steps = trainer.state.global_step
    # Equal log intervals: total tokens / total seconds is the harmonic mean of the per-interval rates.
    return {
        "steady": len(rates) / sum(1 / r for r in rates),
        "runtime": steps * trainer.tokens_per_step / runtime,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "flops_per_token": trainer.flops_per_token,  # the recipe's own figure, via throughput.flops_per_token
    }


class LogClock(TrainerCallback):
    """perf_counter() at each training-loss log, like PretrainTrainer's own tokens/s intervals."""

    def __init__(self):
        self.times: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.times.append(time.perf_counter())


def run_gpt2(args: list[str], vocab_size: int, eos_id: int) -> dict:
    """The same TrainingArguments and blocks with a plain Trainer and transformers' GPT2LMHeadModel."""
    model_args, data_args, _, train_args = pretrain.parse_recipe_args(
        [
            pretrain.ModelArguments,
            pretrain.DataArguments,
            pretrain.TokenizerArguments,
            pretrain.PretrainConfig,
        ],
        args,
    )
    set_seed(train_args.seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=model_args.context_length,
        n_embd=model_args.emb_dim,
        n_layer=model_args.n_layers,
        n_head=model_args.n_heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    model = GPT2LMHeadModel._from_config(config, attn_implementation=model_args.attn_implementation)
    assert model.config._attn_implementation == "sdpa"
    train_set = load_packed_dataset(data_args.packed_dataset_path)["train"]
    clock = LogClock()
    trainer = Trainer(
        model=model,
        args=train_args,
        train_dataset=train_set,
        data_collator=collate_blocks,  # the recipe's collator
        callbacks=[clock],
    )
    runtime = trainer.train().metrics["train_runtime"]
    tokens_per_step = train_args.per_device_train_batch_size * len(train_set[0]["input_ids"])
    return {
        "steady": steady_tokens_per_second(clock.times, train_args.logging_steps * tokens_per_step),
        "runtime": trainer.state.global_step * tokens_per_step / runtime,
        "params": sum(p.numel() for p in model.parameters()),
    }


def bench_throughput(s: Setup, text: str, work: Path, peaks: list[float]) -> dict[str, dict[str, float]]:
    """Medians over interleaved runs (hfpipe, GPT-2, GPT-2, hfpipe, ...) of each side's tokens/s, and the
    median of the ratios of back-to-back pairs (robust to a change of load between pairs). Measures the
    matmul peak again after each run into ``peaks``: the best of them is the least disturbed by the load."""
    tok_dir, data_dir, vocab_size = prepare_data(s, text, work)
    eos_id = load_tokenizer(tok_dir).eos_token_id
    runs: dict[str, list[dict]] = {"hfpipe": [], "gpt2": []}
    for r in range(s.repeats):
        for name in ("hfpipe", "gpt2") if r % 2 == 0 else ("gpt2", "hfpipe"):
            progress(f"throughput run {r + 1}/{s.repeats}: {name}")
            args = recipe_args(s, tok_dir, data_dir, work / f"{name}-{r}", max(peaks))
            result = run_hfpipe(args) if name == "hfpipe" else run_gpt2(args, vocab_size, eos_id)
            runs[name].append(result)
            peaks.append(measure_matmul_peak(torch.float32, size=s.peak_size, seconds=s.peak_seconds / 4))
            progress(
                f"  {name}: {result['steady']:,.0f} tok/s steady, {result['runtime']:,.0f} tok/s runtime"
            )
    assert runs["hfpipe"][0]["params"] == runs["gpt2"][0]["params"], "the two models differ in size"
    medians = {
        name: {key: statistics.median(run[key] for run in rs) for key in ("steady", "runtime")}
        for name, rs in runs.items()
    }
    medians["pair_ratio"] = {
        key: statistics.median(a[key] / b[key] for a, b in zip(runs["hfpipe"], runs["gpt2"]))
        for key in ("steady", "runtime")
    }
    medians["flops_per_token"] = runs["hfpipe"][0]["flops_per_token"]
    medians["params"] = runs["hfpipe"][0]["params"]
    medians["vocab_size"] = vocab_size
    medians["n_peaks"] = len(peaks)
    medians["all"] = runs
    return medians


def run_shakespeare(shared: Path, work: Path) -> dict:
    """nanoGPT's character-level tinyshakespeare run through the recipe: validation loss and wall time."""
    out = work / "shakespeare-char"
    args = ["--config", str(SHAKESPEARE_CONFIG), "--dataset_name", str(shared / "tinyshakespeare.txt")]
    args += ["--output_dir", str(out), "--report_to", "none", "--disable_tqdm", "true"]
    # Only evaluation changes: the whole held-out last 10 % (the config keeps its first 2,400 blocks), every
    # 1,000 steps as each pass over it costs about a minute here. Training is the config's, step for step.
    args += ["--max_eval_samples", "1000000", "--eval_steps", "1000"]
    start = time.perf_counter()
    trainer = pretrain.main(args)
    wall = time.perf_counter() - start
    history = trainer.state.log_history
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    return {
        "eval_loss": evals[-1],
        "best_eval_loss": min(evals),
        "wall": wall,
        "train_runtime": next(h["train_runtime"] for h in history if "train_runtime" in h),
        "steps": trainer.state.global_step,
        "eval_blocks": len(trainer.eval_dataset),
    }


def render(
    s: Setup, quick: bool, peak: float, peak_bf16: float, tp: dict, shk: dict | None, elapsed: float
) -> str:
    ours, ref, ratio = tp["hfpipe"], tp["gpt2"], tp["pair_ratio"]
    threads = torch.get_num_threads()
    status = lambda ok: "(not judged: quick)" if quick else "ok" if ok else "MISSED"  # noqa: E731
    mfu = lambda rate: rate * tp["flops_per_token"] / peak  # noqa: E731
    lines = [
        "# Pretraining: recipes/pretrain.py vs a plain Trainer on GPT2LMHeadModel",
        "",
        f"Model: {s.n_layers} layers x {s.emb_dim} wide, {s.n_heads} heads, context {s.block_size}, "
        f"vocab {tp['vocab_size']} (BPE trained on tinyshakespeare), QKV bias, tied embeddings, dropout 0, "
        f"SDPA; {tp['params']:,} parameters on both sides, {tp['flops_per_token'] / 1e6:,.1f} MFLOP per "
        "token (6 N + 12 L T d). Training: the same packed blocks and TrainingArguments, batch "
        f"{s.batch} x {s.block_size} ({s.batch * s.block_size:,} tokens/step), {s.steps} steps, AdamW, "
        "fp32, eval and saving off. GPT-2 runs its default activation, gelu_new (a tanh GELU in Python "
        "ops); hfpipe the same function as one kernel.",
        "",
        f"Machine: {platform.machine()}, torch {torch.__version__}, torch threads: {threads}, shared with "
        f"other jobs. Medians of {s.repeats} interleaved runs per side (hfpipe, GPT-2, GPT-2, hfpipe, ...) "
        "in one process; the ratio is the median of the ratios of back-to-back pairs, which a change of "
        f'load between pairs does not skew. Whole benchmark {elapsed / 60:.1f} min. "steady" = tokens/s '
        f"from the first training log (step {s.logging_steps}) to the last, i.e. without the warm-up; "
        '"runtime" = steps x batch x block / train_runtime. Absolute figures depend on the load: compare '
        "ratios.",
        "",
        "| measurement | hfpipe recipe | GPT2LMHeadModel + Trainer | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    for key, label in (("steady", "train tokens/s, steady"), ("runtime", "train tokens/s, train_runtime")):
        verdict = status(ratio[key] >= 1.0)
        lines.append(
            f"| {label} | {ours[key]:,.0f} | {ref[key]:,.0f} | {ratio[key]:.2f}x | >= 1.0x {verdict} |"
        )
    lines += [
        f"| MFU vs fp32 matmul peak, steady | {mfu(ours['steady']):.1%} | {mfu(ref['steady']):.1%} | "
        f"{ratio['steady']:.2f}x | |",
        f"| measured matmul peak, fp32 ({s.peak_size}^2, {threads} thread(s), best of {tp['n_peaks']}; "
        "MFU denominator) | "
        f"{peak / 1e9:,.1f} GFLOP/s | | | |",
        f"| measured matmul peak, bf16 (for comparison; bf16 is off) | {peak_bf16 / 1e9:,.1f} GFLOP/s | | "
        f"{peak_bf16 / peak:.2f}x fp32 | |",
    ]
    steady = {name: ", ".join(f"{r['steady']:,.0f}" for r in rs) for name, rs in tp["all"].items()}
    runs = "; ".join(f"{name} {values}" for name, values in steady.items())
    lines += ["", f"Steady tokens/s of each run, per side in run order: {runs}."]
    if shk is not None:
        ok = shk["eval_loss"] <= SHAKESPEARE_REFERENCE
        lines += [
            "",
            "## Character-level tinyshakespeare (recipes/configs/shakespeare_char.yaml)",
            "",
            "4 layers, 4 heads, 128 dims, context 64, batch 12, 2,000 steps, dropout 0, lr 1e-3 cosine to "
            "1e-4, trained as the config says. Validation = the last 10 % of the text (the recipe splits a "
            "single document so), all of it (the config's max_eval_samples overridden), every 1,000 steps.",
            "",
            "| measurement | hfpipe recipe | reference (nanoGPT) | target |",
            "|---|---:|---:|---|",
            f"| validation loss after {shk['steps']:,} steps ({shk['eval_blocks']:,} blocks) | "
            f"{shk['eval_loss']:.3f} | {SHAKESPEARE_REFERENCE} | <= {SHAKESPEARE_REFERENCE} {status(ok)} |",
            f"| best validation loss during the run | {shk['best_eval_loss']:.3f} | | |",
            f"| wall time (whole recipe: data, training, evals, saving) | {shk['wall'] / 60:.1f} min | | |",
            f"| train_runtime (Trainer.train, evals included) | {shk['train_runtime'] / 60:.1f} min | | |",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny dims, few steps, no tinyshakespeare run")
    parser.add_argument(
        "--with-shakespeare",
        dest="shakespeare",
        action="store_true",
        default=None,
        help="run the character-level tinyshakespeare config (the default, except with --quick)",
    )
    parser.add_argument("--without-shakespeare", dest="shakespeare", action="store_false")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: 1 with --quick, else torch's); 1 is faster on a loaded machine",
    )
    parser.add_argument("--shared", type=Path, default=SHARED, help="directory holding tinyshakespeare.txt")
    parser.add_argument("--output", type=Path, default=RESULTS, help="markdown file to write")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep run outputs here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    if args.threads or args.quick:
        torch.set_num_threads(args.threads or 1)
    s = QUICK if args.quick else FULL
    with_shakespeare = not args.quick if args.shakespeare is None else args.shakespeare
    text = (args.shared / "tinyshakespeare.txt").read_text(encoding="utf-8")[: s.text_chars]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hfpipe-bench-pretrain-") as tmp:
        work = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir)) if args.workdir else Path(tmp)
        progress("matmul peak")
        peaks = [measure_matmul_peak(torch.float32, size=s.peak_size, seconds=s.peak_seconds)]
        peak_bf16 = measure_matmul_peak(torch.bfloat16, size=s.peak_size, seconds=s.peak_seconds)
        tp = bench_throughput(s, text, work / "throughput", peaks)
        peak = max(peaks)
        shk = None
        if with_shakespeare:
            progress("character-level tinyshakespeare (long)")
            shk = run_shakespeare(args.shared, work)
    table = render(s, args.quick, peak, peak_bf16, tp, shk, time.perf_counter() - start)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
