"""int8 weight-only (torchao) vs the fp32 model: size on disk, held-out perplexity, generation tokens/s.

    python benchmarks/bench_quantize.py --text corpus.txt            # trains a 6 x 384 GPT briefly on it
    python benchmarks/bench_quantize.py --model outputs/quickstart --text heldout.txt

Goals: size <= 0.35x, perplexity +<= 2 %, tokens/s >= 1.0x on CPU. Writes benchmarks/results/quantize.md.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import tempfile
from pathlib import Path

import torch

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.export.compare import text_blocks
from hfpipe.export.quantize import compare_with_original, format_comparison, quantize_int8
from hfpipe.tokenization import train_bpe_tokenizer

RESULTS = Path(__file__).parent / "results" / "quantize.md"


def train_small_model(text: str, out: Path, steps: int, n_layers: int, emb_dim: int) -> Path:
    """A GPT of ``n_layers`` x ``emb_dim`` trained ``steps`` steps on the first 90 % of ``text``."""
    tokenizer = train_bpe_tokenizer([text], vocab_size=4096)
    special = {"bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = GPTConfig(vocab_size=len(tokenizer), context_length=128, emb_dim=emb_dim, n_heads=6,
                       n_layers=n_layers, drop_rate=0.0, pad_token_id=tokenizer.pad_token_id, **special)  # fmt: skip
    torch.manual_seed(0)
    model = GPTForCausalLM(config)
    blocks = text_blocks(tokenizer, text, 128)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(steps):
        batch = blocks[torch.randint(0, len(blocks), (16,))]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", required=True, help="Text file: the tail 10 %% is the held-out text.")
    parser.add_argument("--model", help="Model directory to quantize instead of training one.")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--n_layers", type=int, default=6)
    parser.add_argument("--emb_dim", type=int, default=384)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    text = Path(args.text).read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_small_model(
            text[:cut], Path(tmp) / "fp32", args.steps, args.n_layers, args.emb_dim
        )
        int8 = quantize_int8(model, Path(tmp) / "int8")
        rows = compare_with_original(
            model, int8, text[cut:], max_eval_blocks=32, max_new_tokens=args.max_new_tokens
        )
    what = (
        args.model
        or f"{args.n_layers} x {args.emb_dim} GPT trained {args.steps} steps on {Path(args.text).name}"
    )
    table = format_comparison(rows)
    report = (
        f"# int8 weight-only quantization (torchao) vs fp32\n\n{what}; perplexity on the last 10 % of the text; "
        f"greedy generation of {args.max_new_tokens} tokens, batch 1, best of 3 interleaved runs, "
        f"{torch.get_num_threads()} threads.\n\n{table}\n\n"
        "Goals: size <= 0.35x, perplexity increase <= 2 %, tokens/s >= 1.0x on CPU.\n"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
