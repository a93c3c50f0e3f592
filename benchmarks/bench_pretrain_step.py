"""One optimizer step of the tinyshakespeare model (4 x 128, context 64, batch 12): nanoGPT's GPT beside hfpipe's
GPT with the tanh or the exact GELU, with the for-loop / fused AdamW, and compiled, timed step by step in turn.

    python benchmarks/bench_pretrain_step.py --nanogpt DIR    # 60 rounds, with the compiled variants
    python benchmarks/bench_pretrain_step.py --nanogpt DIR --without-compile --rounds 20

DIR is a checkout of https://github.com/karpathy/nanoGPT (or set $NANOGPT_DIR): hfpipe does not ship it.

A step = forward with the loss, backward, gradient clipping to 1.0, AdamW step, zero_grad; the same batch for
every variant in a round. One thread (``--threads``). Each round runs every variant once, so that the load of
other jobs hits all alike; medians over the rounds after the first 3. Compilation time (the first step of a
compiled variant, with an empty compilation cache) is reported apart. Writes
``benchmarks/results/pretrain_step.md`` and prints it.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from vs_nanogpt import nanogpt_checkout

from hfpipe.models.gpt import GPTConfig, GPTForCausalLM

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "pretrain_step.md"
VOCAB, BLOCK, BATCH = 65, 64, 12


def nanogpt_module(checkout: Path):
    """nanoGPT's model.py, imported from its checkout."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", checkout / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nanogpt_step(checkout: Path, compile: bool = False):
    """nanoGPT's model and optimizer as its train.py builds them on a CPU (bias=False; AdamW without fused)."""
    nano = nanogpt_module(checkout)
    config = nano.GPTConfig(
        block_size=BLOCK, vocab_size=VOCAB, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False
    )
    model = nano.GPT(config)
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    forward = torch.compile(model) if compile else model

    def step(x):
        forward(x, x)[1].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def hfpipe_step(activation: str, fused: bool, compile: bool = False):
    """hfpipe's GPT as recipes/configs/shakespeare_char.yaml builds it, with AdamW as Trainer makes it."""
    config = GPTConfig.from_preset("tiny", vocab_size=VOCAB, context_length=BLOCK, emb_dim=128, n_heads=4,
                                   n_layers=4, drop_rate=0.0, tie_word_embeddings=True,
                                   activation_function=activation)  # fmt: skip
    model = GPTForCausalLM._from_config(config, attn_implementation="sdpa")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, fused=fused
    )
    forward = torch.compile(model) if compile else model

    def step(x):
        forward(input_ids=x, labels=x).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def variants(checkout: Path, with_compile: bool) -> dict:
    out = {
        "nanoGPT (exact GELU, for-loop AdamW)": lambda: nanogpt_step(checkout),
        "hfpipe, tanh GELU, for-loop AdamW": lambda: hfpipe_step("gelu_pytorch_tanh", fused=False),
        "hfpipe, tanh GELU, fused AdamW (before)": lambda: hfpipe_step("gelu_pytorch_tanh", fused=True),
        "hfpipe, exact GELU, fused AdamW (shakespeare_char.yaml)": lambda: hfpipe_step("gelu", fused=True),
    }
    if with_compile:
        out["nanoGPT compiled"] = lambda: nanogpt_step(checkout, compile=True)
        out["hfpipe, exact GELU, fused AdamW, compiled"] = lambda: hfpipe_step("gelu", True, compile=True)
    return out


def gelu_times(rounds: int = 50) -> dict[str, tuple[float, float]]:
    """Forward and backward ms (medians) of nn.GELU on the feed-forward's activation, 768 x 512."""
    x, grad = torch.randn(768, 512, requires_grad=True), torch.randn(768, 512)
    out = {}
    for approximate in ("tanh", "none"):
        gelu, fwd, bwd = torch.nn.GELU(approximate=approximate), [], []
        for _ in range(rounds):
            start = time.perf_counter()
            y = gelu(x)
            mid = time.perf_counter()
            y.backward(grad)
            fwd.append(mid - start)
            bwd.append(time.perf_counter() - mid)
        out[approximate] = (statistics.median(fwd) * 1e3, statistics.median(bwd) * 1e3)
    return out


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--without-compile", dest="compile", action="store_false")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--nanogpt", type=Path, help="a checkout of karpathy/nanoGPT (default: $NANOGPT_DIR)")
    args = parser.parse_args(argv)
    try:
        args.nanogpt = nanogpt_checkout(args.nanogpt)
    except FileNotFoundError as error:
        parser.exit(2, f"bench_pretrain_step: {error}\n")
    torch.set_num_threads(args.threads)
    # an empty compilation cache: the first step shows what compiling costs a first run
    with tempfile.TemporaryDirectory(prefix="hfpipe-inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        table = render(args, *measure(args), gelu_times())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(table)
    return table


def measure(args) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per step and first-step seconds of each variant."""
    torch.manual_seed(0)
    steps, compile_seconds = {}, {}
    first = torch.randint(0, VOCAB, (BATCH, BLOCK))
    for name, make in variants(args.nanogpt, args.compile).items():
        steps[name] = make()
        start = time.perf_counter()
        steps[name](first)  # the first step: compilation for the compiled variants
        compile_seconds[name] = time.perf_counter() - start
        print(f"[bench_pretrain_step] {name}: first step {compile_seconds[name]:.1f} s", file=sys.stderr)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        batch = torch.randint(0, VOCAB, (BATCH, BLOCK))
        for name, step in steps.items():
            start = time.perf_counter()
            step(batch)
            times[name].append(time.perf_counter() - start)
    skip = min(3, args.rounds - 1)
    return {name: statistics.median(ts[skip:]) for name, ts in times.items()}, compile_seconds


def render(args, median: dict[str, float], compile_seconds: dict[str, float], gelu: dict) -> str:
    skip = min(3, args.rounds - 1)
    base = median["nanoGPT (exact GELU, for-loop AdamW)"]
    lines = [
        "# One optimizer step of the tinyshakespeare model: nanoGPT's GPT vs hfpipe's",
        "",
        f"4 layers x 128, 4 heads, context {BLOCK}, batch {BATCH} ({BATCH * BLOCK} tokens), fp32, "
        f"{args.threads} torch thread(s), torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}. A step = forward with loss, backward, clipping, AdamW, "
        f"zero_grad. Each of {args.rounds} rounds runs every variant once on the same batch (the load of other "
        f"jobs hits all alike); medians over rounds {skip + 1}-{args.rounds}. "
        "`python benchmarks/bench_pretrain_step.py --nanogpt DIR`",
        "",
        "| variant | ms per step (median) | vs nanoGPT | first step (compilation) |",
        "|---|---:|---:|---:|",
    ]
    for name, value in median.items():
        lines.append(f"| {name} | {value * 1e3:.1f} | {value / base:.2f}x | {compile_seconds[name]:.1f} s |")
    lines += [
        "",
        "nn.GELU on 768 x 512 (the feed-forward activation of one layer, one step), ms forward / backward: "
        + ", ".join(f"approximate={a!r} {f:.2f} / {b:.2f}" for a, (f, b) in gelu.items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
