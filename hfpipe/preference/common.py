"""What the reward-model, DPO and RL runs share: the start model, the tokenizer, resuming, saving."""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from hfpipe.evaluation.results import write_results
from hfpipe.loading import is_adapter, load_model, load_tokenizer, model_context_length
from hfpipe.lora import merge_lora
from hfpipe.sft.data import prepare_tokenizer, resolve_max_length
from hfpipe.sft.train import find_resume, fit_embeddings
from hfpipe.training.checkpoints import find_resume_checkpoint

logger = logging.getLogger(__name__)


def load_start(model_args, task: str = "causal-lm", fmt: str = "alpaca", **kwargs):
    """``(model, tokenizer)`` from ``model_args.model_name_or_path`` by hfpipe's one loading rule.

    An SFT LoRA adapter is merged into its base: that merged model is the policy's start and the reference.
    The tokenizer gets a distinct pad token and the SFT chat template; the embeddings grow to fit it.
    """
    path = model_args.model_name_or_path
    if not path:
        raise ValueError(
            "no start model: set model_name_or_path (an hfpipe SFT output, a GPT-2 dir, any causal LM)"
        )
    if model_args.dtype not in (None, "auto"):
        kwargs["dtype"] = getattr(torch, model_args.dtype)
    model = load_model(path, task, merge_adapter=is_adapter(str(path)), **kwargs)
    tokenizer = load_tokenizer(path)
    prepare_tokenizer(
        tokenizer, "alpaca" if fmt == "alpaca" else "text"
    )  # "text": keep a chat template it has
    fit_to_tokenizer(model, tokenizer)
    return model, tokenizer


def fit_to_tokenizer(model, tokenizer) -> None:
    """Grow the embeddings for tokens the tokenizer gained (a pad) and agree on pad/eos ids (any head)."""
    if getattr(model, "generation_config", None) is not None:
        fit_embeddings(model, tokenizer)
        return
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id, model.config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id


def cap_max_length(training_args, model) -> None:
    """``training_args.max_length`` capped at the model's context (trl would let it overflow)."""
    training_args.max_length = resolve_max_length(
        training_args.max_length, model_context_length(model.config)
    )


def resume_point(training_args, model) -> str | None:
    """The checkpoint to resume from (the newest complete one in output_dir), or None.

    Call ``prepare_output_dir(training_args)`` before the trainer is built: it refuses another run's directory.
    """
    if training_args.resume_from_checkpoint:
        return training_args.resume_from_checkpoint
    if hasattr(model, "peft_config"):  # adapter checkpoints hold no config.json to check the architecture by
        found = find_resume(training_args.output_dir)
    else:
        found = find_resume_checkpoint(
            training_args.output_dir, model.config, training_args.process_index == 0
        )
    if found:
        logger.info("resuming from %s", found)
    return str(found) if found else None


def final_model(model, start: str):
    """What to save: the model, or with a new LoRA adapter on a merged SFT adapter start, the merged model.

    That adapter's config would name the bare base, without the SFT adapter it was trained on top of.
    """
    if hasattr(model, "peft_config") and is_adapter(str(start)):
        logger.info(
            "the start was an adapter, merged before training: saving the merged model, not a new adapter"
        )
        return merge_lora(copy.deepcopy(model))
    return model


def save_final(model, tokenizer, output_dir: str | os.PathLike) -> Path:
    """Save ``model`` and ``tokenizer`` to a temp dir, then move the files into ``output_dir`` (beside checkpoints).

    ``config.json`` moves last: a crash part-way leaves no loadable half-model.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=out))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = sorted(tmp.iterdir(), key=lambda p: p.name == "config.json")
        for src in files:
            dst = out / src.name
            if dst.is_dir():
                shutil.rmtree(dst)
            os.replace(src, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def last_eval(trainer) -> dict:
    """The last validation metrics in the trainer's log history (``{}`` when it never evaluated)."""
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    return dict(evals[-1]) if evals else {}


def write_run_results(output_dir: Path, metrics: dict, stage: str, **extra) -> Path:
    """``output_dir/results.json`` in hfpipe's shared shape, with the numeric metrics."""
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return write_results(output_dir, str(output_dir), numbers, stage=stage, **extra)
