"""The SFT run: start model -> data -> trl's SFTTrainer -> saved model and test answers.

    result = run_sft(script_args, training_args, model_args, sft_args)   # trl's dataclasses + SFTArguments

The run lifecycle (output_dir guard, resume, callbacks, final evaluation, save, results.json, model card) is
``hfpipe.training.run``'s; this module builds the data and the trainer.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

from trl import SFTTrainer

from hfpipe.evaluation.answers import ANSWERS_FILE, answer_stats, generate_answers, save_answers
from hfpipe.loading import model_context_length
from hfpipe.lora import build_lora_config, merge_lora
from hfpipe.training.run import (
    finish_run,
    load_start,
    prepare_output_dir,
    save_final,
    train_and_evaluate,
    without_dataset_bars,
)

from .data import SFTDataStats, prepare_data
from .packing import check_packing

logger = logging.getLogger(__name__)


@dataclass
class SFTResult:
    """What an SFT run produced: the trainer, data counts, losses and test answers."""

    trainer: SFTTrainer
    data_format: str
    stats: dict[str, SFTDataStats]
    metrics: dict = field(default_factory=dict)
    answers: list[dict] = field(default_factory=list)
    output_dir: Path | None = None


def run_sft(script_args, training_args, model_args, sft_args) -> SFTResult:
    """Fine-tune ``model_args.model_name_or_path`` on ``script_args.dataset_name``; see the module docstring."""
    model, tokenizer = load_start(
        model_args, "causal-lm", merge_adapter=False, eos_token=training_args.eos_token
    )
    context = model_context_length(model.config)
    fmt, splits, tokenized, stats = prepare_data(script_args, training_args, sft_args, tokenizer, context)
    for name, s in stats.items():
        logger.info("%s data (%s): %s", name, fmt, s.summary())
    if training_args.packing or training_args.padding_free:
        batch = max(training_args.per_device_train_batch_size, training_args.per_device_eval_batch_size)
        check_packing(model, batch, training_args.max_length or 8)
    if training_args.eval_strategy != "no" and "validation" not in tokenized:
        raise ValueError("eval_strategy is set but there is no validation data: raise validation_size")
    prepare_output_dir(training_args)

    if not training_args.packing:  # already tokenized, masked and cut here: nothing left for trl to prepare
        training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    trainer = without_dataset_bars(SFTTrainer)(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized.get("validation"),
        processing_class=tokenizer,
        peft_config=build_lora_config(model_args, "CAUSAL_LM", model) if model_args.use_peft else None,
    )
    metrics = train_and_evaluate(trainer)

    out = Path(training_args.output_dir)
    result = SFTResult(trainer, fmt, stats, metrics, output_dir=out)
    n_answers = len(splits["test"]) if sft_args.test_answers is None else sft_args.test_answers
    if trainer.is_world_process_zero() and n_answers and splits["test"] and fmt != "text":
        result.answers = generate_answers(
            trainer.model, tokenizer, splits["test"][:n_answers], sft_args.answer_max_new_tokens,
            training_args.per_device_eval_batch_size,
        )  # fmt: skip
        save_answers(result.answers, out / ANSWERS_FILE)
        metrics.update(answer_stats(result.answers))
    data = {k: s.summary() for k, s in stats.items()}
    finish_run(trainer, tokenizer, "sft", metrics, data_format=fmt, data=data,
               card={"dataset": script_args.dataset_name, "prompt": "Give three tips for staying healthy."})  # fmt: skip
    if trainer.is_world_process_zero() and sft_args.save_merged:
        if model_args.use_peft:
            save_final(merge_lora(copy.deepcopy(trainer.model)), tokenizer, out / "merged")
        else:
            logger.warning("save_merged needs use_peft: %s is already the full model", out)
    return result
