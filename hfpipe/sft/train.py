"""The SFT run: start model -> data -> trl's SFTTrainer -> saved model, test answers, report.

    result = run_sft(script_args, training_args, model_args, sft_args)   # trl's dataclasses + SFTArguments

Re-running with the same ``output_dir`` resumes from its last complete checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from trl import SFTTrainer, get_peft_config

from hfpipe.io import save_atomically
from hfpipe.loading import load_model_and_tokenizer
from hfpipe.lora import DEFAULT_TARGET_MODULES, merge_lora
from hfpipe.models.gpt import GPTConfig
from hfpipe.training.callbacks import standard_callbacks
from hfpipe.training.checkpoints import list_checkpoints

from ..loading import model_context_length
from .answers import ANSWERS_FILE, answer_stats, generate_answers, save_answers
from .data import SFTDataStats, prepare_data
from .packing import check_packing

logger = logging.getLogger(__name__)
SUMMARY_FILE = "sft_summary.json"


@dataclass
class SFTResult:
    """What an SFT run produced: the trainer, data counts, losses and test answers."""

    trainer: SFTTrainer
    data_format: str
    stats: dict[str, SFTDataStats]
    metrics: dict = field(default_factory=dict)
    answers: list[dict] = field(default_factory=list)
    output_dir: Path | None = None


def fit_embeddings(model, tokenizer) -> None:
    """Grow the model's embeddings when the tokenizer gained tokens (a new pad), and agree on pad/eos ids."""
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    for config in (model.config, model.generation_config):
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.bos_token_id = tokenizer.bos_token_id


def peft_config_for(model, model_args):
    """trl's LoRA config from ModelConfig; hfpipe GPTs default to their attention and feed-forward linears."""
    if model_args.use_peft and not model_args.lora_target_modules and isinstance(model.config, GPTConfig):
        model_args.lora_target_modules = list(DEFAULT_TARGET_MODULES)
    return get_peft_config(model_args)


def find_resume(output_dir: str | Path) -> Path | None:
    """The newest checkpoint whose trainer_state.json was written (Trainer writes it last)."""
    for ckpt in list_checkpoints(output_dir):
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            return ckpt
        except (OSError, ValueError):
            logger.warning("skipping %s: it was interrupted while being saved", ckpt)
    return None


def run_sft(script_args, training_args, model_args, sft_args) -> SFTResult:
    """Fine-tune ``model_args.model_name_or_path`` on ``script_args.dataset_name``; see the module docstring."""
    if not model_args.model_name_or_path:
        raise ValueError(
            "no start model: set model_name_or_path (an hfpipe or GPT-2 checkpoint, or any causal LM)"
        )
    load_kwargs = {
        "attn_implementation": model_args.attn_implementation,
        "revision": model_args.model_revision,
    }
    if model_args.dtype not in (None, "auto"):
        load_kwargs["dtype"] = getattr(torch, model_args.dtype)
    model, tokenizer = load_model_and_tokenizer(
        model_args.model_name_or_path, **{k: v for k, v in load_kwargs.items() if v is not None}
    )
    context = model_context_length(model.config)
    fmt, splits, tokenized, stats = prepare_data(script_args, training_args, sft_args, tokenizer, context)
    for name, s in stats.items():
        logger.info("%s data (%s): %s", name, fmt, s.summary())
    fit_embeddings(model, tokenizer)
    if training_args.packing or training_args.padding_free:
        batch = max(training_args.per_device_train_batch_size, training_args.per_device_eval_batch_size)
        check_packing(model, batch, training_args.max_length or 8)
    if training_args.eval_strategy != "no" and "validation" not in tokenized:
        raise ValueError("eval_strategy is set but there is no validation data: raise validation_size")

    if not training_args.packing:  # already tokenized, masked and cut here: nothing left for trl to prepare
        training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized.get("validation"),
        processing_class=tokenizer,
        peft_config=peft_config_for(model, model_args),
        callbacks=standard_callbacks(),
    )
    resume = training_args.resume_from_checkpoint or find_resume(training_args.output_dir)
    if resume:
        logger.info("resuming from %s", resume)
    metrics = dict(trainer.train(resume_from_checkpoint=str(resume) if resume else None).metrics)
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    if evals and evals[0]["step"] == 0:
        metrics["eval_loss_before"] = evals[0]["eval_loss"]
    if evals and evals[-1]["step"] == trainer.state.global_step:
        metrics.update({k: v for k, v in evals[-1].items() if k.startswith("eval_")})  # no second evaluation
    elif "validation" in tokenized:
        metrics.update(trainer.evaluate(tokenized["validation"]))

    out = Path(training_args.output_dir)
    result = SFTResult(trainer, fmt, stats, metrics, output_dir=out)
    if trainer.is_world_process_zero():
        trainer.save_model(str(out))  # the model, or the adapter, with the tokenizer and its chat template
        tokenizer.save_pretrained(str(out))
        n_answers = len(splits["test"]) if sft_args.test_answers is None else sft_args.test_answers
        if n_answers and splits["test"] and fmt != "text":
            final = trainer.model
            result.answers = generate_answers(
                final, tokenizer, splits["test"][:n_answers], sft_args.answer_max_new_tokens,
                training_args.per_device_eval_batch_size,
            )  # fmt: skip
            save_answers(result.answers, out / ANSWERS_FILE)
            metrics.update(answer_stats(result.answers))
        summary = {"data_format": fmt, "metrics": metrics, "data": {k: s.summary() for k, s in stats.items()}}
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
        if sft_args.save_merged:
            save_merged(trainer.model, tokenizer, out / "merged")
    return result


def save_merged(model, tokenizer, path: Path) -> None:
    """Fold a LoRA adapter into its base and save the plain model (loads with no peft) and tokenizer."""
    if not hasattr(model, "merge_and_unload"):
        logger.warning("save_merged needs use_peft: %s is already the full model", path.parent)
        return

    def write(tmp: Path) -> None:
        merge_lora(model).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    save_atomically(write, path)
