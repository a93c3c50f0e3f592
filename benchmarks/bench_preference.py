"""Preference tuning and RLHF on the book's preference data: reward model, DPO, GRPO, and DPO speed vs plain trl.

    python benchmarks/bench_preference.py --data path/to/instruction-data-with-preference.json
    python benchmarks/bench_preference.py --data ... --sft_model outputs/sft-alpaca    # skip pretrain + SFT
    python benchmarks/bench_preference.py --data ... --quick                          # tiny, a smoke test

1. hfpipe pretrains a small GPT (recipes/pretrain.py, embedded corpus) and instruction-tunes it on the same
   records (recipes/sft.py, the book's Alpaca template and 85/10/5 split) -- or takes --sft_model.
2. recipes/reward_model.py from the SFT model: held-out (test split) pairwise accuracy and mean margin.
3. recipes/dpo.py from the SFT model: held-out reward accuracy and margin before/after, answers before/after.
4. recipes/rl.py (GRPO) from the SFT model against the reward model + ends_with_eos + length_within_bounds:
   mean reward over the first 10 % of the steps against the last 10 %.
5. Plain trl beside 2 and 3, the script a user would write instead: the same SFT model converted to a GPT-2
   directory (hfpipe's convert_checkpoint), then trl's RewardTrainer on GPT2ForSequenceClassification (a new
   score head drawn from the same seed as the recipe's) and DPOTrainer on GPT2LMHeadModel (reference: a frozen
   copy), on the same training pairs with the recipes' own RewardConfig/DPOConfig (only output_dir differs).
   GPT-2's QKV bias, zero after conversion from a GPT without one, stays frozen: both sides train one function.
   Both sides are scored on the same test split by the same functions: hfpipe's evaluate_pairs (pairwise
   accuracy of any sequence classifier) and trl's own DPO evaluation (trainer.evaluate: rewards/accuracies).
   The goal: hfpipe's accuracy >= plain trl's.
6. DPO training tokens/s, interleaved A B B A: recipes/dpo.py vs plain trl's DPOTrainer + GPT2LMHeadModel.
Writes benchmarks/results/preference.md and prints it.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import AutoTokenizer, GPT2ForSequenceClassification, GPT2LMHeadModel, set_seed
from trl import DPOConfig, DPOTrainer, RewardTrainer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes"))
import dpo  # noqa: E402
import pretrain  # noqa: E402
import reward_model  # noqa: E402
import rl  # noqa: E402
import sft  # noqa: E402

from hfpipe.io import write_file_atomically  # noqa: E402
from hfpipe.loading import convert_checkpoint  # noqa: E402
from hfpipe.preference.data import PreferenceDataArguments, load_split_pairs, to_dataset  # noqa: E402
from hfpipe.preference.dpo import evaluate_rewards  # noqa: E402
from hfpipe.preference.reward import evaluate_pairs  # noqa: E402

COMMON = ["--bf16", "false", "--report_to", "none", "--disable_tqdm", "true", "--seed", "123"]


def pretrain_and_sft(work: Path, data: str, quick: bool) -> Path:
    """A small hfpipe GPT, pretrained on the embedded corpus and instruction-tuned on ``data``."""
    dims = (
        ["--emb_dim", "64", "--n_layers", "2", "--n_heads", "2"]
        if quick
        else ["--emb_dim", "128", "--n_layers", "4", "--n_heads", "4"]
    )
    pretrain.main([
        "--output_dir", str(work / "pretrained"), "--model_preset", "tiny", "--vocab_size", "2048",
        "--context_length", "256", "--block_size", "256", *dims, "--per_device_train_batch_size", "16",
        "--max_steps", "10" if quick else "150", "--learning_rate", "2e-3", "--warmup_steps", "10",
        "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "50", *COMMON,
    ])  # fmt: skip
    sft.main([
        "--config", str(REPO / "recipes/configs/sft_alpaca.yaml"), "--model_name_or_path", str(work / "pretrained"),
        "--dataset_name", data, "--output_dir", str(work / "sft"), "--save_strategy", "no",
        "--learning_rate", "2e-3", "--max_length", "256", "--test_answers", "0", "--eval_on_start", "false",
        "--eval_strategy", "no", *(["--max_steps", "4"] if quick else ["--num_train_epochs", "2"]), *COMMON,
    ])  # fmt: skip
    return work / "sft"


def pref_args(config: str, start: Path, data: str, out: Path, *extra: str) -> list[str]:
    return [
        "--config", str(REPO / "recipes/configs" / config), "--model_name_or_path", str(start),
        "--dataset_name", data, "--output_dir", str(out), "--save_strategy", "no",
        "--logging_steps", "10", *COMMON, *extra,
    ]  # fmt: skip


def dpo_tokens_per_second(trainer, runtime: float) -> float:
    return trainer._total_train_tokens / runtime


def run_dpo_steps(start, data, work, steps) -> float:
    result = dpo.main(pref_args("dpo_preference.yaml", start, data, work / f"tp-{time.time_ns()}", "--max_steps",
                                str(steps), "--eval_strategy", "no", "--test_answers", "0", "--learning_rate", "5e-4",
                                "--test_size", "0", "--validation_size", "0"))  # fmt: skip
    return dpo_tokens_per_second(result.trainer, result.metrics["train_runtime"])


def plain_tokenizer(gpt2_dir: Path):
    """The converted tokenizer with a distinct pad token, as hfpipe's recipes give it (eos stays trained)."""
    tokenizer = AutoTokenizer.from_pretrained(gpt2_dir)
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    return tokenizer


def plain_model(cls, gpt2_dir: Path, tokenizer, **kwargs):
    """A transformers GPT-2 class from the converted directory, its embeddings fitted to the tokenizer.

    GPT-2 always has a QKV bias; converted from an hfpipe GPT without one it is zero, and stays frozen there so
    that both sides train the same function (trained, it alone moved held-out accuracy by a few pairs).
    """
    model = cls.from_pretrained(gpt2_dir, **kwargs)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    for block in model.transformer.h:
        if not block.attn.c_attn.bias.any():
            block.attn.c_attn.bias.requires_grad_(False)
    return model


def plain_trl_reward(gpt2_dir: Path, args, splits: dict) -> dict:
    """trl's RewardTrainer on GPT2ForSequenceClassification (one label, a new score head): held-out accuracy."""
    tokenizer = plain_tokenizer(gpt2_dir)
    set_seed(args.seed)  # the new score head, as RewardTrainer does when it builds the model from a name
    model = plain_model(GPT2ForSequenceClassification, gpt2_dir, tokenizer, num_labels=1)
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=to_dataset(splits["train"]), processing_class=tokenizer
    )
    before = evaluate_pairs(trainer.model, tokenizer, splits["test"])
    runtime = trainer.train().metrics["train_runtime"]
    after = evaluate_pairs(trainer.model, tokenizer, splits["test"])
    return {"accuracy_before": before["accuracy"], **after, "train_runtime": runtime}


def plain_trl_dpo(gpt2_dir: Path, args, splits: dict) -> tuple[DPOTrainer, dict]:
    """trl's DPOTrainer on GPT2LMHeadModel, a frozen copy as the reference; (trainer, train metrics)."""
    tokenizer = plain_tokenizer(gpt2_dir)
    model = plain_model(GPT2LMHeadModel, gpt2_dir, tokenizer)
    ref = plain_model(GPT2LMHeadModel, gpt2_dir, tokenizer)
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=args,
        train_dataset=to_dataset(splits["train"]),
        processing_class=tokenizer,
    )
    return trainer, trainer.train().metrics


def dpo_accuracy(trainer, test: list[dict]) -> dict:
    """trl's own held-out DPO metrics (trainer.evaluate), for either side: reward accuracy and margin."""
    m = evaluate_rewards(trainer, to_dataset(test))
    return {"accuracy": m["test_rewards/accuracies"], "margin": m["test_rewards/margins"]}


def run_trl_gpt2(gpt2_dir, data, work, steps) -> float:
    """The plain trl script a user would write: GPT2LMHeadModel, a frozen copy as reference, prompt/chosen/rejected."""
    train = {"train": load_split_pairs(data, PreferenceDataArguments())[0]["train"]}
    args = DPOConfig(
        output_dir=str(work / f"trl-{time.time_ns()}"), max_steps=steps, per_device_train_batch_size=8,
        learning_rate=5e-4, beta=0.1, max_length=256, activation_checkpointing=False, bf16=False, use_cpu=True,
        save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=10, seed=123,
    )  # fmt: skip
    trainer, metrics = plain_trl_dpo(gpt2_dir, args, train)
    return dpo_tokens_per_second(trainer, metrics["train_runtime"])


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the book's instruction-data-with-preference.json")
    p.add_argument(
        "--sft_model", default=None, help="a saved SFT output to start from (skips pretrain + SFT)"
    )
    p.add_argument("--quick", action="store_true", help="tiny model, few steps (smoke test)")
    p.add_argument("--output", default=str(REPO / "benchmarks/results/preference.md"))
    p.add_argument("--workdir", default=None)
    a = p.parse_args(argv)
    if not Path(a.data).is_file():
        sys.exit(
            f"error: --data {a.data!r} does not exist; pass the path of instruction-data-with-preference.json"
        )
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_preference-"))
    torch.set_num_threads(
        1
    )  # a small model only loses to thread synchronisation, badly so on a shared machine
    t0 = time.perf_counter()
    start = Path(a.sft_model) if a.sft_model else pretrain_and_sft(work, a.data, a.quick)
    length = ["--max_length", "256", *(["--max_steps", "3"] if a.quick else ["--num_train_epochs", "1"])]
    answers = (
        ["--test_answers", "4", "--answer_max_new_tokens", "8"]
        if a.quick
        else ["--answer_max_new_tokens", "48"]
    )

    rm_length = ["--max_length", "256", *(["--max_steps", "3"] if a.quick else ["--num_train_epochs", "3"])]
    # The plain-trl side: the same SFT weights as a GPT-2 directory, the same pairs and split (the recipes'
    # configs keep PreferenceDataArguments' defaults), the recipes' own RewardConfig/DPOConfig.
    gpt2_dir = convert_checkpoint(str(start), str(work / "sft-gpt2"), "to_gpt2")
    splits = load_split_pairs(a.data, PreferenceDataArguments())[0]

    rm = reward_model.main(pref_args("reward_preference.yaml", start, a.data, work / "reward", *rm_length,
                                     "--learning_rate", "1e-3", "--eval_strategy", "no"))  # fmt: skip
    if rm.metrics["test_pairs"] != len(splits["test"]):
        raise RuntimeError(
            f"the recipe held out {rm.metrics['test_pairs']} pairs, the plain-trl side {len(splits['test'])}"
        )
    hf_rm = evaluate_pairs(rm.trainer.model, rm.trainer.processing_class, splits["test"])
    trl_rm = plain_trl_reward(gpt2_dir, replace(rm.trainer.args, output_dir=str(work / "trl-reward")), splits)
    d = dpo.main(pref_args("dpo_preference.yaml", start, a.data, work / "dpo", *length, *answers,
                           "--learning_rate", "1e-3", "--eval_strategy", "no"))  # fmt: skip
    hf_dpo = dpo_accuracy(d.trainer, splits["test"])
    trl_dpo_trainer, trl_dpo_train = plain_trl_dpo(
        gpt2_dir, replace(d.trainer.args, output_dir=str(work / "trl-dpo")), splits
    )
    trl_dpo = dpo_accuracy(trl_dpo_trainer, splits["test"])
    rl_steps = "4" if a.quick else "120"
    r = rl.main(pref_args("rl_preference.yaml", start, a.data, work / "rl", "--reward_model_path", str(work / "reward"),
                          "--max_steps", rl_steps, "--max_completion_length", "16" if a.quick else "48",
                          "--length_max_tokens", "40", "--learning_rate", "3e-4", "--logging_steps", "1",
                          "--per_device_train_batch_size", "8" if a.quick else "16"))  # fmt: skip

    steps, rounds = (2, 1) if a.quick else (10, 1)
    vs_trl = []
    for _ in range(rounds):  # A B B A: load from other processes hits both sides alike
        ours = run_dpo_steps(start, a.data, work, steps)
        theirs = run_trl_gpt2(gpt2_dir, a.data, work, steps)
        theirs2 = run_trl_gpt2(gpt2_dir, a.data, work, steps)
        ours2 = run_dpo_steps(start, a.data, work, steps)
        vs_trl += [(ours, theirs), (ours2, theirs2)]

    m, rmm, rlm = d.metrics, rm.metrics, r.metrics
    med = lambda i: statistics.median(x[i] for x in vs_trl)  # noqa: E731
    ratio = statistics.median(x / y for x, y in vs_trl)
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    n_test = len(splits["test"])
    vs = [
        ("reward model", "RewardTrainer + GPT2ForSequenceClassification", hf_rm, trl_rm,
         rmm["train_runtime"], trl_rm["train_runtime"]),
        ("DPO", "DPOTrainer + GPT2LMHeadModel", hf_dpo, trl_dpo, m["train_runtime"], trl_dpo_train["train_runtime"]),
    ]  # fmt: skip
    lines = [
        "# Preference benchmark: the book's preference data (ch. 7 appendix), reward model, DPO, GRPO",
        "",
        f"`python benchmarks/bench_preference.py --data instruction-data-with-preference.json{' --quick' if a.quick else ''}`; "
        f"whole run {(time.perf_counter() - t0) / 60:.1f} min on this machine (shared, 2 CPU cores). Start: "
        f"{'--sft_model ' + str(start) if a.sft_model else 'a small GPT hfpipe pretrains and instruction-tunes here'}.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| reward model: held-out pairwise accuracy ({rmm.get('test_pairs', 0)} test pairs), before -> after | "
        f"{pct(rmm['test_accuracy_before'])} -> {pct(rmm['test_accuracy'])} | >= plain trl's (below) |",
        f"| reward model: mean margin (chosen - rejected score), before -> after | "
        f"{rmm['test_margin_before']:.3f} -> {rmm['test_margin']:.3f} | > 0 |",
        f"| DPO: held-out reward accuracy, before -> after | {pct(m['test_rewards/accuracies_before'])} -> "
        f"{pct(m['test_rewards/accuracies'])} | >= plain trl's (below) |",
        f"| DPO: held-out reward margin, before -> after | {m['test_rewards/margins_before']:.3f} -> "
        f"{m['test_rewards/margins']:.3f} | the book: ~1.98 (GPT-2 355M, validation) |",
        f"| GRPO: mean reward, first 10 % -> last 10 % of {len(r.curve)} steps | {rlm['reward_first_10pct']:.3f} -> "
        f"{rlm['reward_last_10pct']:.3f} | rises |",
        f"| DPO train tokens/s: recipes/dpo.py vs trl DPOTrainer + GPT2LMHeadModel (same dims, weights, pairs) | "
        f"{med(0):,.0f} vs {med(1):,.0f} = {ratio:.2f}x | >= 1.0x |",
        "",
        f"hfpipe's recipes against plain trl, the script a user would write instead: the same SFT weights (converted "
        f"to GPT-2 with hfpipe's convert_checkpoint; the new score head drawn from the same seed; GPT-2's QKV bias, "
        f"which hfpipe's model does not have, frozen at the converted zeros), the same {len(splits['train'])} "
        f"training pairs, the recipes' own RewardConfig/DPOConfig; held-out accuracy on the same {n_test} test "
        "pairs, by the same function for both sides (reward model: hfpipe's `evaluate_pairs`, score of chosen > "
        "rejected; DPO: trl's `trainer.evaluate`, `rewards/accuracies`). Train time is the Trainer's "
        "`train_runtime`, one run each, on a shared machine.",
        "",
        "| stage | plain trl side | held-out accuracy: hfpipe vs plain trl | goal: hfpipe >= plain trl | "
        "mean margin: hfpipe vs plain trl | train s: hfpipe vs plain trl |",
        "|---|---|---|---|---|---|",
    ]
    for stage, theirs, ours_m, theirs_m, ours_s, theirs_s in vs:
        gap = round((ours_m["accuracy"] - theirs_m["accuracy"]) * n_test)
        met = "met" if gap >= 0 else "not met"
        lines.append(
            f"| {stage} | {theirs} | {pct(ours_m['accuracy'])} vs {pct(theirs_m['accuracy'])} | {met} "
            f"({gap:+d} of {n_test} pairs) | {ours_m['margin']:.3f} vs {theirs_m['margin']:.3f} | "
            f"{ours_s:.1f} vs {theirs_s:.1f} = {ours_s / theirs_s:.2f}x |"
        )
    lines += [
        "",
        "Two DPO test answers before and after, as generated (greedy):",
        "",
    ]
    for x in d.answers[:2]:
        lines.append(f"- **{x['instruction']}** {('(input: ' + x['input'] + ')') if x['input'] else ''}")
        lines.append(f"  - chosen: {x['chosen']!r}")
        lines.append(f"  - before: {x['before']!r}")
        lines.append(f"  - after: {x['after']!r}")
    table = "\n".join(lines) + "\n"
    write_file_atomically(lambda tmp: tmp.write_text(table), a.output)
    print(table)
    return table


if __name__ == "__main__":
    main()
