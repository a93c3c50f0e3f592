"""Perplexity evaluation speed: hfpipe's ``evaluate_perplexity`` against lm-eval's ``loglikelihood_rolling``.

    python benchmarks/bench_eval.py                          # random 6-layer GPT, stdlib docstrings
    python benchmarks/bench_eval.py --model outputs/quickstart --text held_out.txt
    python benchmarks/bench_eval.py --quick                  # tiny, for the smoke test

Both sides score the same documents with the same model (disjoint windows: ``stride = 0``, which
is what lm-eval does) and must give the same total log-likelihood; the table reports tokens/s of each
(median of interleaved repeats: compare the ratio, the machine is shared) and the agreement of bits per
byte. Writes ``benchmarks/results/eval.md`` and prints it.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import contextlib
import io
import itertools
import math
import platform
import statistics
import time
from pathlib import Path

import torch

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.evaluation.perplexity import evaluate_perplexity

RESULTS = Path(__file__).resolve().parent / "results" / "eval.md"


def build_model_and_texts(args):
    """The model (loaded, or random) and the documents to score."""
    from hfpipe.data.stdlib_corpus import iter_stdlib_docstrings
    from hfpipe.loading import load_model_and_tokenizer
    from hfpipe.tokenization import train_bpe_tokenizer

    if args.text or args.quick:
        path = args.text or Path(__file__).resolve().parents[1] / "hfpipe/evaluation/tasks/hfpipe_text.txt"
        texts = [p for p in Path(path).read_text(encoding="utf-8").split("\n\n") if p.strip()]
    else:
        texts = (d for d in iter_stdlib_docstrings() if len(d) > 200)
    texts = list(itertools.islice(texts, args.documents))
    if args.model:
        model, tokenizer = load_model_and_tokenizer(args.model)
    else:
        tokenizer = train_bpe_tokenizer(texts, vocab_size=args.vocab_size)
        torch.manual_seed(0)
        dims = (2, 64, 2, 64) if args.quick else (6, 384, 6, 256)
        config = GPTConfig(
            vocab_size=len(tokenizer), n_layers=dims[0], emb_dim=dims[1], n_heads=dims[2], context_length=dims[3],
            drop_rate=0.0, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        )  # fmt: skip
        model = GPTForCausalLM(config)
    return model.eval(), tokenizer, texts


def run_hfpipe(model, tokenizer, texts, batch_size):
    result = evaluate_perplexity(model, tokenizer, texts, stride=0,
                                 batch_size=batch_size, bf16=False, progress=False)  # fmt: skip
    return result.nll, result.tokens


def run_lm_eval(lm, texts):
    from lm_eval.api.instance import Instance

    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    with contextlib.redirect_stderr(io.StringIO()):  # lm-eval draws a progress bar per batch of windows
        return -sum(lm.loglikelihood_rolling(requests, disable_tqdm=True)), None


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; returns (and writes) the Markdown table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="a model directory (default: a random GPT)")
    parser.add_argument(
        "--text", help="a UTF-8 text file, paragraphs are documents (default: stdlib docstrings)"
    )
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--vocab_size", type=int, default=2048)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny settings for the smoke test")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.documents, args.vocab_size, args.repeats = min(args.documents, 40), 300, 1

    from lm_eval.models.huggingface import HFLM

    model, tokenizer, texts = build_model_and_texts(args)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size, device="cpu")
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    times = {"hfpipe": [], "lm-eval": []}
    nll = {}
    tokens = 0
    for repeat in range(args.repeats):
        order = ("hfpipe", "lm-eval") if repeat % 2 == 0 else ("lm-eval", "hfpipe")
        for side in order:
            start = time.perf_counter()
            if side == "hfpipe":
                nll[side], tokens = run_hfpipe(model, tokenizer, texts, args.batch_size)
            else:
                nll[side], _ = run_lm_eval(lm, texts)
            times[side].append(time.perf_counter() - start)
    bpb = {side: value / math.log(2) / n_bytes for side, value in nll.items()}
    speed = {side: tokens / statistics.median(t) for side, t in times.items()}
    n_params = sum(p.numel() for p in model.parameters())
    table = "\n".join([
        "# Perplexity evaluation: hfpipe vs lm-eval `loglikelihood_rolling`",
        "",
        f"Model: {args.model or 'random GPT'} ({n_params / 1e6:.1f} M parameters, context "
        f"{model.config.max_position_embeddings}); {len(texts)} documents, {tokens:,} tokens, {n_bytes:,} bytes "
        f"({args.text or ('hfpipe_text.txt' if args.quick else 'stdlib docstrings')}); batch {args.batch_size}, fp32, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}; median of {args.repeats} interleaved repeats.",
        "",
        "| | tokens/s | bits per byte |",
        "|---|---:|---:|",
        f"| lm-eval `HFLM.loglikelihood_rolling` | {speed['lm-eval']:,.0f} | {bpb['lm-eval']:.5f} |",
        f"| hfpipe `evaluate_perplexity` | {speed['hfpipe']:,.0f} | {bpb['hfpipe']:.5f} |",
        f"| **hfpipe / lm-eval** | **{speed['hfpipe'] / speed['lm-eval']:.2f}x** | "
        f"rel. difference {abs(bpb['hfpipe'] - bpb['lm-eval']) / bpb['lm-eval']:.1e} |",
        "",
    ])  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(table, encoding="utf-8")
    print(table)
    return table


if __name__ == "__main__":
    main()
