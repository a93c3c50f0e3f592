"""Speed of hfpipe's GPTForCausalLM against transformers' GPT2LMHeadModel with the same weights.

    python benchmarks/bench_model.py            # GPT-2-small dimensions (about 5-10 minutes on 2 cores)
    python benchmarks/bench_model.py --quick    # a small model, for the smoke test

Measures, in one run and on this machine: forward+backward training tokens/s (fp32 and bf16 autocast, with
the CPU features that decide whether bf16 is fast here), greedy generate() tokens/s, and generate() with
vs without the KV cache. The hfpipe model is what ``hfpipe.loading.load_model`` makes of the saved GPT-2.
Repeats of the two sides are interleaved (A B, B A, ...) and the median is reported, so that load from
other processes hits both alike; compare the ratios, not the absolute figures. Writes ``benchmarks/results/model.md`` and prints it.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import contextlib
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from hfpipe import hardware
from hfpipe.loading import load_model
from hfpipe.models.gpt import GPTForCausalLM

RESULTS = Path(__file__).resolve().parent / "results" / "model.md"


@dataclass
class Setup:
    n_layers: int
    emb_dim: int
    n_heads: int
    vocab_size: int
    seq_len: int  # training sequence length
    batch: int
    train_repeats: int
    gen_prompt: int
    gen_new: int  # new tokens for the hfpipe vs GPT-2 generation comparison
    gen_repeats: int
    kv_new: int  # new tokens for the cache vs no-cache comparison
    kv_repeats: int


FULL = Setup(12, 768, 12, 50257, 256, 4, 3, 16, 128, 3, 256, 1)
QUICK = Setup(2, 64, 4, 1024, 64, 2, 2, 8, 32, 2, 128, 2)


def build_models(s: Setup):
    """A random GPT-2 (dropout 0, QKV bias, tied embeddings) and the hfpipe model that hfpipe's one loader makes
    of its saved directory (the same weights)."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=s.vocab_size,
        n_positions=max(1024, s.kv_new + s.gen_prompt),
        n_embd=s.emb_dim,
        n_layer=s.n_layers,
        n_head=s.n_heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
    )
    gpt2 = GPT2LMHeadModel(config)
    with tempfile.TemporaryDirectory(prefix="hfpipe-bench-model-") as tmp:
        gpt2.save_pretrained(tmp)
        ours = load_model(tmp)
    assert isinstance(ours, GPTForCausalLM)
    assert ours.config.qkv_bias and ours.lm_head.weight is ours.model.tok_emb.weight
    assert ours.config._attn_implementation == gpt2.config._attn_implementation == "sdpa"
    return ours, gpt2


def progress(step: str) -> None:
    print(f"[bench_model] {time.strftime('%H:%M:%S')} {step}", file=sys.stderr, flush=True)


def interleaved(fns: dict, repeats: int, warmup: dict | None = None) -> dict[str, float]:
    """Median seconds of each function, after a warm-up call each, alternating the order per repeat."""
    names = list(fns)
    for fn in (fns if warmup is None else warmup).values():
        fn()
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def train_step(model, ids, bf16: bool):
    autocast = torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    model.zero_grad(set_to_none=True)


def bench_training(ours, gpt2, s: Setup, bf16: bool) -> dict[str, float]:
    ids = torch.randint(0, s.vocab_size, (s.batch, s.seq_len))
    for model in (ours, gpt2):
        model.train()
    fns = {"ours": lambda: train_step(ours, ids, bf16), "gpt2": lambda: train_step(gpt2, ids, bf16)}
    seconds = interleaved(fns, s.train_repeats)
    return {name: s.batch * s.seq_len / t for name, t in seconds.items()}


def greedy(model, prompt, new_tokens: int, use_cache: bool = True) -> torch.Tensor:
    return model.generate(
        prompt,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        use_cache=use_cache,
        pad_token_id=0,
    )


@torch.inference_mode()
def bench_generation(ours, gpt2, s: Setup) -> dict[str, float]:
    for model in (ours, gpt2):
        model.eval()
    prompt = torch.randint(0, s.vocab_size, (1, s.gen_prompt))
    ours_tokens, gpt2_tokens = greedy(ours, prompt, s.gen_new), greedy(gpt2, prompt, s.gen_new)
    assert torch.equal(ours_tokens, gpt2_tokens), (
        "hfpipe and GPT-2 generated different tokens from the same weights"
    )
    fns = {"ours": lambda: greedy(ours, prompt, s.gen_new), "gpt2": lambda: greedy(gpt2, prompt, s.gen_new)}
    seconds = interleaved(fns, s.gen_repeats, warmup={})  # the equality check above warmed both up
    return {name: s.gen_new / t for name, t in seconds.items()}


@torch.inference_mode()
def bench_kv_cache(ours, s: Setup) -> dict[str, float]:
    ours.eval()
    prompt = torch.randint(0, s.vocab_size, (1, s.gen_prompt))
    assert torch.equal(greedy(ours, prompt, 16, True), greedy(ours, prompt, 16, False))  # also the warm-up
    fns = {
        "cache": lambda: greedy(ours, prompt, s.kv_new, True),
        "no_cache": lambda: greedy(ours, prompt, s.kv_new, False),
    }
    seconds = interleaved(fns, s.kv_repeats, warmup={})
    return {name: s.kv_new / t for name, t in seconds.items()}


def bf16_note() -> str:
    """Which CPU features decide whether the bf16 rows can be fast (AVX512-BF16 or AMX) and what hfpipe picks."""
    yes = lambda b: "yes" if b else "no"  # noqa: E731
    fast = hardware.cpu_has_fast_bf16()
    return (
        f"CPU: torch capability {torch.backends.cpu.get_cpu_capability()}, AVX512-BF16: "
        f"{yes(torch.cpu._is_avx512_bf16_supported())}, AMX: {yes(torch.cpu._is_amx_tile_supported())} "
        f"(`hfpipe.hardware.cpu_has_fast_bf16()` = {fast}): "
        + (
            "bf16 is native here, and the recipes train in bf16 autocast by default."
            if fast
            else "bf16 is emulated here, so the bf16 rows are slower than fp32; the recipes train in fp32 by default."
        )
    )


def render(s: Setup, quick: bool, rows: list[tuple], elapsed: float) -> str:
    lines = [
        "# hfpipe GPT vs transformers GPT-2: speed",
        "",
        f"Config: {'quick' if quick else 'GPT-2-small class'}: {s.n_layers} layers x {s.emb_dim} wide, "
        f"{s.n_heads} heads, vocab {s.vocab_size}, QKV bias, tied embeddings, dropout 0, SDPA attention. "
        f"Training: batch {s.batch} x {s.seq_len} tokens, forward+backward (no optimizer). "
        f"Generation: greedy, batch 1, prompt {s.gen_prompt}.",
        "",
        f"Machine: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}. Medians of interleaved repeats (train {s.train_repeats}, "
        f"generate {s.gen_repeats}, cache {s.kv_repeats}); whole run {elapsed:.0f} s. "
        "Absolute figures depend on the machine's load; compare ratios.",
        "",
        bf16_note(),
        "",
        "| measurement | hfpipe GPT | reference | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name, ours, reference, ref_name, target in rows:
        ratio = ours / reference
        status = "(not judged: quick)" if quick else "ok" if ratio >= target else "MISSED"
        lines.append(
            f"| {name} | {ours:,.1f} tok/s | {reference:,.1f} tok/s ({ref_name}) | {ratio:.2f}x | "
            f">= {target:g}x {status} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small model, a few seconds (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="markdown file to write")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: 1 with --quick, where a tiny model only suffers from thread sync; else torch's)",
    )
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    if args.threads or args.quick:
        torch.set_num_threads(args.threads or 1)
    start = time.perf_counter()
    ours, gpt2 = build_models(s)

    progress("training fp32")
    fp32 = bench_training(ours, gpt2, s, bf16=False)
    progress("training bf16 autocast")
    bf16 = bench_training(ours, gpt2, s, bf16=True)
    progress("greedy generation")
    gen = bench_generation(ours, gpt2, s)
    progress("KV cache")
    kv = bench_kv_cache(ours, s)
    rows = [
        ("train fwd+bwd, fp32", fp32["ours"], fp32["gpt2"], "GPT2LMHeadModel", 1.0),
        ("train fwd+bwd, bf16 autocast", bf16["ours"], bf16["gpt2"], "GPT2LMHeadModel", 1.0),
        (
            f"greedy generate, {s.gen_new} new tokens",
            gen["ours"],
            gen["gpt2"],
            "GPT2LMHeadModel.generate",
            1.0,
        ),
        (
            f"generate with KV cache, {s.kv_new} new tokens",
            kv["cache"],
            kv["no_cache"],
            "hfpipe, no cache",
            5.0,
        ),
    ]
    table = render(s, args.quick, rows, time.perf_counter() - start)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
