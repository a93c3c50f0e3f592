"""Instruction fine-tuning on the book's data: recipes/sft.py against a plain trl SFTTrainer script.

    python benchmarks/bench_sft.py --data path/to/instruction-data.json
    python benchmarks/bench_sft.py --data path/to/instruction-data.json --quick     # tiny, a minute

1. hfpipe pretrains a small GPT on its embedded standard-library corpus (recipes/pretrain.py).
2. recipes/sft.py fine-tunes it on the 1,100 Alpaca records (book template, 85/10/5 split in file order):
   validation loss before/after, greedy answers to the 110 test prompts, share ending with eos and share
   leaking template text (goals: >= 95 % each).
3. Training tokens/s, same steps and batches, interleaved A B B A: the recipe vs a plain trl SFTTrainer on a
   GPT2LMHeadModel of the same dimensions (the same weights, converted) and the same prompt/completion data;
   and the recipe with packing on vs off. The machine is shared: compare the ratios.
Writes benchmarks/results/sft.md and prints it.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes"))
import pretrain  # noqa: E402
import sft  # noqa: E402

from hfpipe.convert import gpt_to_gpt2  # noqa: E402
from hfpipe.data.instructions import normalize_records  # noqa: E402
from hfpipe.loading import load_model_and_tokenizer  # noqa: E402


def pretrain_start(work: Path, quick: bool) -> Path:
    out = work / "pretrained"
    dims = (
        ["--emb_dim", "64", "--n_layers", "2", "--n_heads", "2"]
        if quick
        else ["--emb_dim", "128", "--n_layers", "4", "--n_heads", "4"]
    )
    pretrain.main([
        "--output_dir", str(out), "--model_preset", "tiny", "--vocab_size", "2048" if quick else "4096",
        "--context_length", "256", "--block_size", "256", *dims, "--per_device_train_batch_size", "16",
        "--max_steps", "20" if quick else "150", "--learning_rate", "2e-3", "--warmup_steps", "20",
        "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "50", "--report_to", "none",
        "--disable_tqdm", "true", "--bf16", "false", "--seed", "123",
    ])  # fmt: skip
    return out


def sft_args(start: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--config", str(REPO / "recipes/configs/sft_alpaca.yaml"), "--model_name_or_path", str(start),
        "--dataset_name", str(data), "--output_dir", str(out), "--save_strategy", "no", "--disable_tqdm", "true",
        "--learning_rate", "1e-3", "--max_length", "256", "--bf16", "false", *extra,
    ]  # fmt: skip


def tokens_per_second(trainer, runtime: float) -> float:
    return trainer._total_train_tokens / runtime


def run_recipe_steps(start, data, work, steps, *extra) -> float:
    result = sft.main(sft_args(start, data, work / f"tp-{time.time_ns()}", "--max_steps", str(steps),
                               "--eval_strategy", "no", "--eval_on_start", "false", "--test_answers", "0", *extra))  # fmt: skip
    return tokens_per_second(result.trainer, result.metrics["train_runtime"])


def run_trl_gpt2(start, data, work, steps) -> float:
    """The plain trl script a user would write: GPT2LMHeadModel, prompt/completion data, SFTTrainer defaults."""
    model, tokenizer = load_model_and_tokenizer(str(start))
    gpt2 = gpt_to_gpt2(model).train()
    records, _ = normalize_records(json.loads(Path(data).read_text()), "alpaca")
    train = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in records[:935]])
    args = SFTConfig(
        output_dir=str(work / f"trl-{time.time_ns()}"), max_steps=steps, per_device_train_batch_size=8,
        learning_rate=1e-3, max_length=256, activation_checkpointing=False, bf16=False, use_cpu=True,
        save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=10, seed=123,
    )  # fmt: skip
    trainer = SFTTrainer(model=gpt2, args=args, train_dataset=train, processing_class=tokenizer)
    runtime = trainer.train().metrics["train_runtime"]
    return tokens_per_second(trainer, runtime)


def median_ratio(pairs):
    return statistics.median(a / b for a, b in pairs)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the book's instruction-data.json")
    p.add_argument("--quick", action="store_true", help="tiny model, few steps (smoke test)")
    p.add_argument("--output", default=str(REPO / "benchmarks/results/sft.md"))
    p.add_argument("--workdir", default=None)
    a = p.parse_args(argv)
    if not Path(a.data).is_file():
        sys.exit(f"error: --data {a.data!r} does not exist; pass the path of instruction-data.json")
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_sft-"))
    t0 = time.perf_counter()
    start = pretrain_start(work, a.quick)

    epochs = (
        ["--max_steps", "6", "--answer_max_new_tokens", "16", "--test_answers", "8"]
        if a.quick
        else ["--num_train_epochs", "2", "--answer_max_new_tokens", "64"]
    )
    full = sft.main(sft_args(start, a.data, work / "sft", *epochs))
    m = full.metrics

    steps, rounds = (4, 1) if a.quick else (40, 2)
    vs_trl, vs_packed = [], []
    for _ in range(rounds):  # A B B A: load from other processes hits both sides alike
        ours = run_recipe_steps(start, a.data, work, steps)
        theirs = run_trl_gpt2(start, a.data, work, steps)
        theirs2 = run_trl_gpt2(start, a.data, work, steps)
        ours2 = run_recipe_steps(start, a.data, work, steps)
        vs_trl += [(ours, theirs), (ours2, theirs2)]
        packed = run_recipe_steps(start, a.data, work, steps, "--packing", "true", "--per_device_train_batch_size", "1",
                                  "--per_device_eval_batch_size", "1", "--gradient_accumulation_steps", "2")  # fmt: skip
        unpacked = run_recipe_steps(start, a.data, work, steps)
        vs_packed.append((packed, unpacked))

    answers = full.answers
    good = [x for x in answers if x["ended_with_eos"] and not x["leaked_template"]][:2]
    bad = [x for x in answers if x not in good][:1] or answers[-1:]
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    lines = [
        "# SFT benchmark: the book's instruction data (ch. 7)",
        "",
        f"`python benchmarks/bench_sft.py --data instruction-data.json{' --quick' if a.quick else ''}`; "
        f"whole run {(time.perf_counter() - t0) / 60:.1f} min on this machine (shared, 2 CPU cores).",
        "",
        "| measure | hfpipe | peer | ratio |",
        "|---|---|---|---|",
        f"| train tokens/s: recipes/sft.py vs trl SFTTrainer + GPT2LMHeadModel (same dims, weights, data) | "
        f"{med(vs_trl, 0):,.0f} | {med(vs_trl, 1):,.0f} | {median_ratio(vs_trl):.2f}x |",
        f"| train tokens/s: packing on (batch 1 x 256, padding-free) vs off (batch 8, padded) | "
        f"{med(vs_packed, 0):,.0f} | {med(vs_packed, 1):,.0f} | {median_ratio(vs_packed):.2f}x |",
        "",
        "| SFT result (recipes/sft.py, sft_alpaca.yaml, start: hfpipe-pretrained GPT) | value | goal |",
        "|---|---|---|",
        f"| split train / test / validation | {full.stats['train'].records} / {m.get('test_answers', 0)} / "
        f"{full.stats['validation'].records} | 935 / 110 / 55 |",
        f"| validation loss before -> after SFT | {m.get('eval_loss_before', float('nan')):.3f} -> {m['eval_loss']:.3f} | lower |",
        f"| test answers ending with eos | {100 * m.get('eos_share', 0):.1f} % | >= 95 % |",
        f"| test answers with no template leak | {100 * (1 - m.get('template_leak_share', 1)):.1f} % | >= 95 % |",
        f"| tokens trained (response share) | {100 * full.stats['train'].trained_share:.1f} % | |",
        "",
        "Three test answers, as generated (greedy):",
        "",
    ]
    for x in good + bad:
        lines.append(f"- **{x['instruction']}** {('(input: ' + x['input'] + ')') if x['input'] else ''}")
        lines.append(f"  - reference: {x['reference']!r}")
        lines.append(
            f"  - response: {x['response']!r} (eos: {x['ended_with_eos']}, leak: {x['leaked_template']})"
        )
    table = "\n".join(lines) + "\n"
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
