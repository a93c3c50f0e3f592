"""Training throughput of recipes/pretrain.py in fp32 and in bf16 autocast, each against a plain Trainer on
GPT2LMHeadModel in the same dtype; then the character-level tinyshakespeare run beside nanoGPT's own train.py,
and in bf16.

    python benchmarks/bench_pretrain.py                         # 6 x 384, ctx 256, then tinyshakespeare
    python benchmarks/bench_pretrain.py --without-shakespeare   # the throughput comparison only
    python benchmarks/bench_pretrain.py --quick                 # tiny dims, few steps, no tinyshakespeare
    python benchmarks/bench_pretrain.py --size medium           # 4 x 192, ctx 128: where bf16 is emulated
    python benchmarks/bench_pretrain.py --without-throughput --without-bf16   # hfpipe vs nanoGPT only
    python benchmarks/bench_pretrain.py --shakespeare-max-steps 500   # shorter tinyshakespeare runs (labelled)

Both sides train on the same pre-packed blocks (a BPE tokenizer trained on tinyshakespeare, packed once and
saved; the recipe loads them with --packed_dataset_path), with the same TrainingArguments (the recipe's
own argument classes, ``pretrain.ARGUMENTS``, parsed from the same flags; eval and saving off) and models of
the same size (QKV bias, tied embeddings, dropout 0, SDPA attention). The hfpipe side is the real recipe,
``pretrain.main([...])``; both sides measure tokens/s with the same ``ThroughputCallback``. The dtype is
forced on both sides with ``--bf16 true`` / ``--bf16 false``, whatever this CPU's automatic answer is, so
the table shows the recipe's bf16/fp32 ratio on any machine (>= 3x is the goal where the CPU has
AVX512-BF16 or AMX; without them PyTorch emulates bf16 and it is slower than fp32). Runs are interleaved
(hfpipe fp32, GPT-2 fp32, hfpipe bf16, GPT-2 bf16, then the reverse order, ...) in one process and
medians reported, so that load from other processes hits all alike: compare the ratios.

Where bf16 is emulated the slowdown grows with the matrix sizes: with torch 2.13's CPU build on an AVX2-only
CPU, an ``nn.Linear`` 384 -> 1536 over 1,024 tokens ran its forward ~10x and its backward ~20x slower in bf16
autocast than in fp32, and one bf16 step of the full model (6 x 384) took over a minute; ``--size medium``
keeps the bf16 runs to minutes there.

The tinyshakespeare section (benchmarks/vs_nanogpt.py) runs recipes/configs/shakespeare_char.yaml and
nanoGPT's README command for a CPU (a checkout of karpathy/nanoGPT, unmodified) as two processes at the same time, one torch
thread each, and compares their wall times (goal: the recipe <= 0.8x nanoGPT's), the loss of both final models on
the same held-out windows (goal: equal or lower) and where each run's time goes (benchmarks/pretrain_profile.py).
A bf16 run of the recipe checks that quality holds in bf16: its held-out loss must end within 0.02 of fp32's.
Beside that pair runs a third process, recipes/configs/shakespeare_char_modern.yaml (the nanochat architecture
with Muon, 400 steps): the time it takes, start to finish, to reach nanoGPT's 2,000-step held-out loss, against
nanoGPT's wall time (goal: <= 0.5x), with every run's validation loss against wall time in
``pretrain_time_to_loss.png`` beside the output. Last, the quickstart corpus with the book preset and AdamW against
the modern preset and Muon (quickstart.yaml vs quickstart_modern.yaml, benchmarks/book_vs_modern.py), at equal
steps and at equal wall time (``--without-book-vs-modern`` skips it):

    python benchmarks/bench_pretrain.py --without-throughput --without-bf16 --nanogpt DIR \
        --output benchmarks/results/pretrain_time_to_loss.md

Writes ``benchmarks/results/pretrain.md`` (after each phase, so an interrupted run leaves its partial figures)
and prints it.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

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
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, set_seed

from hfpipe import hardware
from hfpipe.data.packing import pack_ids
from hfpipe.data.prepare import load_packed_dataset, save_packed_dataset
from hfpipe.loading import load_tokenizer
from hfpipe.pretraining import collate_blocks
from hfpipe.recipe_args import parse_recipe_args
from hfpipe.tokenization import save_tokenizer, train_bpe_tokenizer
from hfpipe.training.callbacks import ThroughputCallback, add_callbacks
from hfpipe.training.throughput import flops_per_token, measure_matmul_peak

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes"))
import book_vs_modern  # noqa: E402  (benchmarks/, this script's directory)
import pretrain  # noqa: E402
import vs_nanogpt  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "pretrain.md"
SHARED = REPO.parent / "shared" / "data"
BF16_SPEEDUP_GOAL = 3.0  # issue 8: recipe bf16 / fp32 tokens/s on a CPU with AVX512-BF16 or AMX
DTYPES = ("fp32", "bf16")
SIDES = ("hfpipe", "gpt2")


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
    repeats: int  # runs of each side in each dtype
    text_chars: int | None  # tinyshakespeare characters used (None: all)
    peak_size: int  # matmul size for the peak
    peak_seconds: float


FULL = Setup(6, 384, 6, 256, 4096, 4, 16, 4, 3, None, 2048, 2.0)
QUICK = Setup(2, 64, 2, 64, 512, 4, 4, 2, 2, 100_000, 512, 0.4)
# For CPUs where bf16 is emulated: there a bf16 step of FULL's model takes minutes (see the docstring).
MEDIUM = Setup(4, 192, 4, 128, 2048, 4, 16, 4, 3, None, 1024, 1.0)
SETUPS = {"full": FULL, "medium": MEDIUM, "quick": QUICK}


def progress(step: str) -> None:
    print(f"[bench_pretrain] {time.strftime('%H:%M:%S')} {step}", file=sys.stderr, flush=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> dict:
    """What decides the bf16 branch: the CPU's native bf16 support as torch and hfpipe see it."""
    return {
        "cpu": cpu_name(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
        "amx": torch.cpu._is_amx_tile_supported(),
        "cpu_has_fast_bf16": hardware.cpu_has_fast_bf16(),
        "fast_bf16_available": hardware.fast_bf16_available(),
        "plain_bf16_matmul": plain_bf16_matmul_rate(),
    }


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


def recipe_args(s: Setup, tok_dir: Path, data_dir: Path, out: Path, peak: float, bf16: bool) -> list[str]:
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
        "bf16": bf16,  # forced either way: the benchmark measures both branches on any CPU
        "seed": 0,
        "dataloader_num_workers": 0,
        "peak_tflops": peak / 1e12,
        "sample_max_new_tokens": 1,
    }
    text = lambda v: str(v).lower() if isinstance(v, bool) else str(v)  # noqa: E731
    return [item for key, value in flags.items() for item in (f"--{key}", text(value))]


def throughput_from_logs(trainer, tokens_per_step: int) -> dict:
    """Tokens/s from ThroughputCallback's logs after the first (warm-up excluded), and from train_runtime."""
    history = trainer.state.log_history
    rates = [h["tokens_per_second"] for h in history if "tokens_per_second" in h][1:]
    runtime = next(h["train_runtime"] for h in history if "train_runtime" in h)
    # Equal log intervals: total tokens / total seconds is the harmonic mean of the per-interval rates.
    return {
        "steady": len(rates) / sum(1 / r for r in rates),
        "runtime": trainer.state.global_step * tokens_per_step / runtime,
        "params": sum(p.numel() for p in trainer.model.parameters()),
    }


def run_hfpipe(args: list[str], s: Setup) -> dict:
    """One run of the recipe: tokens/s from its own logs (after the first) and from train_runtime."""
    trainer = pretrain.main(args)
    assert trainer.args.bf16 == ("--bf16" in args and args[args.index("--bf16") + 1] == "true")
    result = throughput_from_logs(trainer, s.batch * s.block_size)
    result["flops_per_token"] = flops_per_token(trainer.model.config, s.block_size)
    return result


def run_gpt2(args: list[str], vocab_size: int, eos_id: int) -> dict:
    """The same TrainingArguments and blocks with a plain Trainer and transformers' GPT2LMHeadModel."""
    _, model_args, arch, data_args, _, train_args = parse_recipe_args(pretrain.ARGUMENTS, args)
    set_seed(train_args.seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=arch.context_length,
        n_embd=arch.emb_dim,
        n_layer=arch.n_layers,
        n_head=arch.n_heads,
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
    tokens_per_step = train_args.per_device_train_batch_size * len(train_set[0]["input_ids"])
    trainer = Trainer(
        model=model,
        args=train_args,  # the recipe's PretrainConfig: bf16 autocast exactly as the recipe gets it
        train_dataset=train_set,
        data_collator=collate_blocks,  # the recipe's collator
    )
    add_callbacks(trainer, [ThroughputCallback(tokens_per_step)])  # the recipe's clock
    trainer.train()
    return throughput_from_logs(trainer, tokens_per_step)


def linear_peak(dtype: torch.dtype, size: int, seconds: float) -> float:
    """FLOP/s of a square ``F.linear`` (the best of repeated runs): the kernel nn.Linear runs under bf16
    autocast on CPU (oneDNN). Without native bf16, a plain bf16 ``a @ b`` takes a far slower path, so
    ``measure_matmul_peak(torch.bfloat16)`` would understate what training gets (and take minutes at 2048)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.nn.functional.linear(a, b)  # the first call of a dtype pays one-time set-up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.nn.functional.linear(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def plain_bf16_matmul_rate(size: int = 256) -> float:
    """FLOP/s of one bf16 ``a @ b`` after a warm-up: shows whether plain bf16 matmuls are native here."""
    a = torch.randn(size, size, dtype=torch.bfloat16)
    a @ a
    start = time.perf_counter()
    a @ a
    return 2 * size**3 / (time.perf_counter() - start)


def measure_peaks(s: Setup, peaks: dict[str, list[float]], seconds: float) -> None:
    """fp32: the recipe's own MFU denominator (``measure_matmul_peak``); bf16: ``F.linear`` (see linear_peak)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    peaks["fp32"].append(measure_matmul_peak(torch.float32, size=s.peak_size, seconds=seconds))
    peaks["bf16"].append(linear_peak(torch.bfloat16, size=s.peak_size, seconds=seconds))


def bench_throughput(s: Setup, text: str, work: Path, peaks: dict[str, list[float]]) -> dict:
    """Interleaved runs of each (side, dtype); medians of tokens/s, the median of the hfpipe/GPT-2 ratios of
    back-to-back pairs, and of the recipe's bf16/fp32 ratios within each round. Measures both matmul peaks
    again after each round into ``peaks``: the best of them is the least disturbed by the load."""
    tok_dir, data_dir, vocab_size = prepare_data(s, text, work)
    eos_id = load_tokenizer(tok_dir).eos_token_id
    order = [(side, dtype) for dtype in DTYPES for side in SIDES]  # hfpipe fp32, gpt2 fp32, hfpipe bf16, ...
    runs: dict[tuple[str, str], list[dict]] = {key: [] for key in order}
    for r in range(s.repeats):
        for side, dtype in order if r % 2 == 0 else reversed(order):
            progress(f"throughput round {r + 1}/{s.repeats}: {side} {dtype}")
            out = work / f"{side}-{dtype}-{r}"
            args = recipe_args(s, tok_dir, data_dir, out, max(peaks["fp32"]), dtype == "bf16")
            result = run_hfpipe(args, s) if side == "hfpipe" else run_gpt2(args, vocab_size, eos_id)
            runs[side, dtype].append(result)
            progress(
                f"  {side} {dtype}: {result['steady']:,.0f} tok/s steady, {result['runtime']:,.0f} tok/s runtime"
            )
        measure_peaks(s, peaks, s.peak_seconds / 4)
    params = {run[0]["params"] for run in runs.values()}
    assert len(params) == 1, f"the models differ in size: {params}"
    keys = ("steady", "runtime")
    tp: dict = {key: {k: statistics.median(run[k] for run in rs) for k in keys} for key, rs in runs.items()}
    for dtype in DTYPES:
        pairs = list(zip(runs["hfpipe", dtype], runs["gpt2", dtype]))
        tp["pair_ratio", dtype] = {k: statistics.median(a[k] / b[k] for a, b in pairs) for k in keys}
    for side in SIDES:
        pairs = list(zip(runs[side, "bf16"], runs[side, "fp32"]))
        tp["bf16_ratio", side] = {k: statistics.median(a[k] / b[k] for a, b in pairs) for k in keys}
    tp["flops_per_token"] = runs["hfpipe", "fp32"][0]["flops_per_token"]
    tp["params"] = params.pop()
    tp["vocab_size"] = vocab_size
    tp["all"] = runs
    return tp


def render_features(f: dict, peak: dict[str, float]) -> list[str]:
    yes = lambda b: "yes" if b else "no"  # noqa: E731
    return [
        f"CPU: {f['cpu']}; torch CPU capability {f['capability']}; AVX512-BF16: {yes(f['avx512_bf16'])}, "
        f"AMX: {yes(f['amx'])}, so `hfpipe.hardware.cpu_has_fast_bf16()` = {f['cpu_has_fast_bf16']} and the "
        f"recipe's automatic choice is {'bf16' if f['fast_bf16_available'] else 'fp32'} "
        f"(`fast_bf16_available()` = {f['fast_bf16_available']}). Measured matmul peak: fp32 "
        f"{peak['fp32'] / 1e9:,.1f} GFLOP/s (`a @ b`), bf16 {peak['bf16'] / 1e9:,.1f} GFLOP/s (`F.linear`, the "
        f"path of nn.Linear under autocast) = {peak['bf16'] / peak['fp32']:.2f}x fp32; a plain bf16 `a @ b` "
        f"(256^2) runs at {f['plain_bf16_matmul'] / 1e9:,.2f} GFLOP/s "
        + (
            "(native bf16: a training step can gain about as much)."
            if f["cpu_has_fast_bf16"]
            else "(no native bf16: PyTorch emulates it, so bf16 training is expected to be *slower* than fp32 "
            "here; the >= 3x goal is for CPUs with AVX512-BF16 or AMX and cannot be judged on this one)."
        ),
    ]


def render_throughput(s: Setup, quick: bool, tp: dict, peak: dict[str, float], fast_bf16: bool) -> list[str]:
    threads = torch.get_num_threads()
    status = lambda ok: "(not judged: quick)" if quick else "ok" if ok else "MISSED"  # noqa: E731
    lines = [
        f"Model: {s.n_layers} layers x {s.emb_dim} wide, {s.n_heads} heads, context {s.block_size}, "
        f"vocab {tp['vocab_size']} (BPE trained on tinyshakespeare), QKV bias, tied embeddings, dropout 0, "
        f"SDPA; {tp['params']:,} parameters on both sides, {tp['flops_per_token'] / 1e6:,.1f} MFLOP per "
        "token (6 N + 12 L T d). Training: the same packed blocks and TrainingArguments (the recipe's "
        f"PretrainConfig), batch {s.batch} x {s.block_size} ({s.batch * s.block_size:,} tokens/step), "
        f"{s.steps} steps, AdamW, fp32 weights, eval and saving off; `--bf16 false` (fp32) or `--bf16 true` "
        "(bf16 autocast) forced on both sides. GPT-2 runs its default activation, gelu_new (a tanh GELU in "
        "Python ops); hfpipe the same function as one kernel.",
        "",
        f"Machine: {platform.machine()}, torch {torch.__version__}, torch threads: {threads}, shared with "
        f"other jobs. Medians of {s.repeats} interleaved rounds (hfpipe fp32, GPT-2 fp32, hfpipe bf16, GPT-2 "
        "bf16, then the reverse order, ...) in one process; hfpipe/GPT-2 is the median of the ratios of "
        "back-to-back pairs and bf16/fp32 the median of the ratios within each round, which a change of "
        'load between rounds does not skew. "steady" = tokens/s from the first training log (step '
        f"{s.logging_steps}) to the last, i.e. without the warm-up, by the same ThroughputCallback on both "
        'sides; "runtime" = steps x batch x block / train_runtime. Absolute figures depend on the load: '
        "compare ratios.",
        "",
        "| measurement | hfpipe recipe | GPT2LMHeadModel + Trainer | hfpipe / GPT-2 | target |",
        "|---|---:|---:|---:|---|",
    ]
    names = {"fp32": "fp32", "bf16": "bf16 autocast"}
    for key, label in (("steady", "train tokens/s, steady"), ("runtime", "train tokens/s, train_runtime")):
        for dtype in DTYPES:
            ours, ref, ratio = tp["hfpipe", dtype][key], tp["gpt2", dtype][key], tp["pair_ratio", dtype][key]
            lines.append(
                f"| {label}, {names[dtype]} | {ours:,.0f} | {ref:,.0f} | {ratio:.2f}x | "
                f">= 1.0x {status(ratio >= 1.0)} |"
            )
    if fast_bf16:
        goal = (
            f">= {BF16_SPEEDUP_GOAL:g}x {status(tp['bf16_ratio', 'hfpipe']['steady'] >= BF16_SPEEDUP_GOAL)}"
        )
    else:
        goal = f">= {BF16_SPEEDUP_GOAL:g}x on a CPU with AVX512-BF16/AMX; not judged: this CPU has neither"
    for key, label in (("steady", "steady"), ("runtime", "train_runtime")):
        ours, ref = tp["bf16_ratio", "hfpipe"][key], tp["bf16_ratio", "gpt2"][key]
        lines.append(
            f"| **bf16 / fp32 tokens/s, {label}** | **{ours:.2f}x** | {ref:.2f}x | | "
            f"{goal if key == 'steady' else ''} |"
        )
    mfu = lambda side, dtype: tp[side, dtype]["steady"] * tp["flops_per_token"] / peak[dtype]  # noqa: E731
    for dtype in DTYPES:
        lines.append(
            f"| MFU vs {dtype} matmul peak, steady, {names[dtype]} | {mfu('hfpipe', dtype):.1%} | "
            f"{mfu('gpt2', dtype):.1%} | {tp['pair_ratio', dtype]['steady']:.2f}x | |"
        )
    n_peaks = 1 + s.repeats
    lines += [
        f"| measured matmul peak, fp32 ({s.peak_size}^2, {threads} thread(s), best of {n_peaks}) | "
        f"{peak['fp32'] / 1e9:,.1f} GFLOP/s | | | |",
        f"| measured matmul peak, bf16 (F.linear, {s.peak_size}^2, best of {n_peaks}) | {peak['bf16'] / 1e9:,.1f} GFLOP/s "
        f"| | {peak['bf16'] / peak['fp32']:.2f}x fp32 | |",
    ]
    each = "; ".join(
        f"{side} {dtype} " + ", ".join(f"{r['steady']:,.0f}" for r in rs)
        for (side, dtype), rs in tp["all"].items()
    )
    return lines + ["", f"Steady tokens/s of each run, in round order: {each}."]


def render(
    s: Setup,
    quick: bool,
    features: dict,
    peak: dict[str, float],
    tp: dict | None,
    shk: dict | None,
    elapsed: float,
    done: bool,
    bvm: tuple[list, int | None] | None = None,
) -> str:
    lines = [
        "# Pretraining: recipes/pretrain.py vs a plain Trainer on GPT2LMHeadModel (fp32, bf16) and vs nanoGPT",
        "",
        *render_features(features, peak),
        "",
        f"Whole benchmark {elapsed / 60:.1f} min"
        + ("." if done else " so far: **partial results, the benchmark is still running or was stopped**."),
        "",
    ]
    if tp is not None:
        lines += render_throughput(s, quick, tp, peak, features["cpu_has_fast_bf16"])
    if shk is not None and shk["runs"]:
        lines += vs_nanogpt.render(shk, quick=shk["plan"].steps != vs_nanogpt.FULL_STEPS)
    if bvm is not None:
        lines += book_vs_modern.render(*bvm)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny dims, few steps, no tinyshakespeare run")
    parser.add_argument(
        "--size",
        choices=list(SETUPS),
        default=None,
        help="model and run size of the throughput comparison (default: full; quick with --quick). medium "
        "suits CPUs without native bf16, where a bf16 step of the full model takes minutes",
    )
    parser.add_argument(
        "--with-shakespeare",
        dest="shakespeare",
        action="store_true",
        default=None,
        help="run the character-level tinyshakespeare config beside nanoGPT's train.py, and in bf16 (the "
        "default, except with --quick; slow where bf16 is emulated)",
    )
    parser.add_argument("--without-shakespeare", dest="shakespeare", action="store_false")
    parser.add_argument(
        "--shakespeare-max-steps",
        type=int,
        default=None,
        help="shorten the tinyshakespeare runs to this many steps (labelled as reduced in the table)",
    )
    parser.add_argument(
        "--shakespeare-eval-blocks",
        type=int,
        default=None,
        help="compare the final models on the first this many held-out windows of 64 (default: all 1,742)",
    )
    parser.add_argument(
        "--without-bf16", dest="bf16", action="store_false", help="no bf16 tinyshakespeare run"
    )
    parser.add_argument(
        "--without-modern",
        dest="modern",
        action="store_false",
        help="no shakespeare_char_modern.yaml run (the time to nanoGPT's loss) beside the tinyshakespeare pair",
    )
    parser.add_argument(
        "--with-book-vs-modern",
        dest="book_vs_modern",
        action="store_true",
        default=None,
        help="the quickstart corpus with the book preset + AdamW against the modern preset + Muon (the default, "
        "except with --quick)",
    )
    parser.add_argument("--without-book-vs-modern", dest="book_vs_modern", action="store_false")
    parser.add_argument(
        "--book-vs-modern-steps", type=int, default=None, help="override both quickstart configs' max_steps"
    )
    parser.add_argument(
        "--with-compile",
        action="store_true",
        help="also nanoGPT with --compile=True beside the recipe with --torch_compile true",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run nanoGPT and the recipe one after the other (default: at the same time, one thread each)",
    )
    parser.add_argument(
        "--without-throughput",
        dest="throughput",
        action="store_false",
        help="skip the throughput comparison (run the tinyshakespeare runs only)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: 1 with --quick, else torch's); 1 is faster on a loaded machine",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="interleaved throughput rounds (default: 3, 2 with --quick)"
    )
    parser.add_argument("--shared", type=Path, default=SHARED, help="directory holding tinyshakespeare.txt")
    parser.add_argument("--nanogpt", type=Path, default=None,
                        help="a checkout of github.com/karpathy/nanoGPT (default: $NANOGPT_DIR)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS, help="markdown file to write")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep run outputs here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    if args.threads or args.quick:
        torch.set_num_threads(args.threads or 1)
    s = SETUPS[args.size or ("quick" if args.quick else "full")]
    if args.repeats:
        s = dataclasses.replace(s, repeats=args.repeats)
    with_shakespeare = not args.quick if args.shakespeare is None else args.shakespeare
    with_bvm = not args.quick if args.book_vs_modern is None else args.book_vs_modern
    if not args.throughput and not with_shakespeare and not with_bvm:
        parser.error(
            "nothing to run: --without-throughput, --without-shakespeare and --without-book-vs-modern"
        )
    plan = vs_nanogpt.Plan(
        steps=args.shakespeare_max_steps or vs_nanogpt.FULL_STEPS,
        eval_windows=args.shakespeare_eval_blocks,
        threads=args.threads,
        concurrent=not args.sequential,
        bf16=args.bf16,
        compile=args.with_compile,
        modern=args.modern,
        curves_png=args.output.with_name("pretrain_time_to_loss.png"),
    )
    text = (args.shared / "tinyshakespeare.txt").read_text(encoding="utf-8")[: s.text_chars]
    features = cpu_features()
    start = time.perf_counter()
    tp, shk, bvm = None, None, None
    args.output.parent.mkdir(parents=True, exist_ok=True)

    def write(done: bool = False) -> str:
        peak = {dtype: max(values) for dtype, values in peaks.items()}
        elapsed = time.perf_counter() - start
        table = render(s, args.quick, features, peak, tp, shk, elapsed, done, bvm)
        args.output.write_text(table)
        return table

    with tempfile.TemporaryDirectory(prefix="hfpipe-bench-pretrain-") as tmp:
        work = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir)) if args.workdir else Path(tmp)
        progress(f"matmul peaks; {features}")
        peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}
        measure_peaks(s, peaks, s.peak_seconds)
        if args.throughput:
            tp = bench_throughput(s, text, work / "throughput", peaks)
            write()
        if with_shakespeare:

            def update(state: dict) -> None:
                nonlocal shk
                shk = state
                write()

            vs_nanogpt.run_all(args.shared, work / "shakespeare", plan, progress, update, args.nanogpt)
        if with_bvm:
            runs = book_vs_modern.run_all(work / "book-vs-modern", progress, args.book_vs_modern_steps)
            bvm = (runs, args.book_vs_modern_steps)
            write()
    table = write(done=True)
    print(table)
    return table


if __name__ == "__main__":
    main()
