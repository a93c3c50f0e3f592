"""DPO (the book's preference tuning) with trl's ``DPOTrainer``.

    result = run_dpo(script_args, training_args, model_args, data_args, dpo_args)   # DPOConfig etc.

- Start: an SFT output, or an SFT LoRA adapter (merged into its base first: that is the SFT model).
- Reference: a frozen copy of the start model; with ``use_peft``, the same model with the adapter disabled
  (no second copy in memory). ``beta``, ``loss_type`` and ``precompute_ref_log_probs`` are trl's options.
- Reports held-out (test split) reward accuracy and margin before and after, and greedy answers to the test
  prompts before and after, side by side in ``dpo_answers.json``.
Re-running with the same ``output_dir`` resumes from its last complete checkpoint.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from trl import DPOTrainer

from hfpipe.evaluation.answers import generate_answers, save_answers
from hfpipe.evaluation.results import RESULTS_FILE
from hfpipe.loading import load_tokenizer
from hfpipe.lora import build_lora_config, merge_lora
from hfpipe.tokenization import CHAT_TEMPLATE
from hfpipe.training.run import (
    finish_run,
    prepare_output_dir,
    save_final,
    train_and_evaluate,
    without_dataset_bars,
)

from .common import cap_max_length, final_model, load_preference_start
from .data import load_split_pairs, to_dataset

logger = logging.getLogger(__name__)
ANSWERS_FILE = "dpo_answers.json"
REWARD_KEYS = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


@dataclass
class DPOArguments:
    """hfpipe's DPO settings that trl's dataclasses do not have."""

    test_answers: int | None = field(
        default=None, metadata={"help": "test prompts answered before and after DPO (null: all, 0: none)"}
    )
    answer_max_new_tokens: int = field(default=256, metadata={"help": "cap on each test answer's length"})
    save_merged: bool = field(
        default=False, metadata={"help": "with use_peft: also write the merged model to output_dir/merged"}
    )


def looks_instruction_tuned(name_or_path: str) -> bool:
    """True for an hfpipe SFT (or later) output, a tokenizer with a chat template of its own, or an instruct/chat
    name."""
    results = Path(str(name_or_path)) / RESULTS_FILE
    if results.is_file() and json.loads(results.read_text()).get("stage") in ("sft", "dpo", "rl"):
        return True
    template = load_tokenizer(name_or_path).chat_template
    if template and template != CHAT_TEMPLATE:  # CHAT_TEMPLATE: what hfpipe pretraining saves
        return True
    return bool(re.search(r"instruct|chat|sft|-it\b", Path(str(name_or_path)).name, re.IGNORECASE))


def answer_records(pairs: list[dict]) -> list[dict]:
    """Test pairs as the records ``hfpipe.evaluation.answers.generate_answers`` answers (the chosen answer as reference)."""
    records = []
    for p in pairs:
        if isinstance(p["chosen"], list):
            records.append({"prompt": p.get("prompt", []), "completion": p["chosen"]})
        elif "prompt" in p:
            source = {k: p[k] for k in ("instruction", "input") if k in p}
            records.append({"prompt": p["prompt"], "completion": p["chosen"], **source})
    return records


def side_by_side(pairs: list[dict], before: list[dict], after: list[dict]) -> list[dict]:
    """One record per test prompt: instruction, input, chosen, rejected, the answer before and after DPO."""
    rows = []
    for p, b, a in zip(pairs, before, after):
        rows.append({
            "instruction": b["instruction"], "input": b["input"], "chosen": p["chosen"], "rejected": p["rejected"],
            "before": b["response"], "after": a["response"],
            "before_ended_with_eos": b["ended_with_eos"], "after_ended_with_eos": a["ended_with_eos"],
        })  # fmt: skip
    return rows


@dataclass
class DPOResult:
    """What a DPO run produced: the trainer, held-out metrics, the before/after answers."""

    trainer: DPOTrainer
    metrics: dict = field(default_factory=dict)
    answers: list[dict] = field(default_factory=list)
    output_dir: Path | None = None


def evaluate_rewards(trainer, dataset) -> dict:
    """DPO's held-out loss, reward accuracy and margins on ``dataset`` (``test_*`` keys)."""
    trainer.evaluate(dataset, metric_key_prefix="test")
    logged = next(
        h for h in reversed(trainer.state.log_history) if "test_loss" in h
    )  # trl logs eval_rewards/*
    out = {f"test_{k}": logged[f"eval_{k}"] for k in REWARD_KEYS if f"eval_{k}" in logged}
    return {**out, "test_loss": logged["test_loss"]}


def run_dpo(script_args, training_args, model_args, data_args, dpo_args) -> DPOResult:
    """DPO on ``script_args.dataset_name`` from ``model_args.model_name_or_path``; see the module docstring."""
    splits, fmt, dropped = load_split_pairs(
        script_args.dataset_name, data_args, script_args.dataset_config, script_args.dataset_train_split
    )
    if not looks_instruction_tuned(model_args.model_name_or_path):
        message = (
            f"{model_args.model_name_or_path} does not look instruction-tuned (no SFT results.json, no chat template "
            "of its own): DPO refines an SFT model; run recipes/sft.py first for useful answers"
        )
        logger.warning(message)
        warnings.warn(message, stacklevel=2)
    model, tokenizer = load_preference_start(model_args, "causal-lm", fmt)
    cap_max_length(training_args, model)
    logger.info(
        "pairs (%s): %d train, %d test, %d validation; dropped %s", fmt,
        *(len(splits[k]) for k in ("train", "test", "validation")), dict(dropped) or "none",
    )  # fmt: skip
    if training_args.eval_strategy != "no" and not splits["validation"]:
        raise ValueError("eval_strategy is set but there is no validation data: raise validation_size")

    test = splits["test"]
    n_answers = len(test) if dpo_args.test_answers is None else min(dpo_args.test_answers, len(test))
    records = answer_records(test[:n_answers])
    max_new = dpo_args.answer_max_new_tokens
    batch = training_args.per_device_eval_batch_size
    before = generate_answers(model, tokenizer, records, max_new, batch) if records else []

    peft_config = build_lora_config(model_args, "CAUSAL_LM", model) if model_args.use_peft else None
    # Without LoRA the reference is a frozen copy, taken before trl patches the policy's forward.
    ref_model = None if peft_config else copy.deepcopy(model).eval().requires_grad_(False)
    prepare_output_dir(training_args)
    trainer = without_dataset_bars(DPOTrainer)(
        model=model,
        ref_model=ref_model,
        args=training_args,
        train_dataset=to_dataset(splits["train"]),
        eval_dataset=to_dataset(splits["validation"]) if training_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    test_ds = to_dataset(test) if test else None
    metrics = {}
    if test_ds is not None:
        metrics.update({f"{k}_before": v for k, v in evaluate_rewards(trainer, test_ds).items()})
    metrics.update(train_and_evaluate(trainer))
    if test_ds is not None:
        metrics.update(evaluate_rewards(trainer, test_ds))
        metrics["test_pairs"] = len(test)
    metrics["dropped_pairs"] = sum(dropped.values())

    out = Path(training_args.output_dir)
    result = DPOResult(trainer, metrics, output_dir=out)
    if trainer.is_world_process_zero():
        after = generate_answers(trainer.model, tokenizer, records, max_new, batch) if records else []
        result.answers = side_by_side(test, before, after)
        if result.answers:
            save_answers(result.answers, out / ANSWERS_FILE)
            n = len(result.answers)
            metrics["eos_share_before"] = sum(a["before_ended_with_eos"] for a in result.answers) / n
            metrics["eos_share"] = sum(a["after_ended_with_eos"] for a in result.answers) / n
    final = final_model(trainer.model, model_args.model_name_or_path)  # the model, or the LoRA adapter
    finish_run(trainer, tokenizer, "dpo", metrics, model=final, dropped=dict(dropped),
               card={"dataset": script_args.dataset_name, "prompt": "Give three tips for staying healthy."})  # fmt: skip
    if trainer.is_world_process_zero() and dpo_args.save_merged and peft_config:
        save_final(merge_lora(copy.deepcopy(trainer.model)), tokenizer, out / "merged")
    return result


__all__ = [
    "ANSWERS_FILE",
    "DPOArguments",
    "DPOResult",
    "answer_records",
    "evaluate_rewards",
    "looks_instruction_tuned",
    "run_dpo",
    "side_by_side",
]
