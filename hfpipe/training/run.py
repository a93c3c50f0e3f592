"""One run lifecycle for every training stage: pretraining, classifier, SFT, reward model, DPO, RL, distillation.

A stage builds its model, its data and its trainer; everything around them happens here, the same way for all:

    prepare_output_dir(args)                            # refuse another run's directory, keep this run's to resume
    model, tokenizer = load_start(model_args, task)     # the loading rule + the pad rule (fit_pad_token)
    ...                                                 # the stage's data and trainer
    metrics = train_and_evaluate(trainer, callbacks)    # hfpipe's callbacks first, resume, train, final evaluation
    finish_run(trainer, tokenizer, "sft", metrics)      # atomic save, results.json, model card, the Hub
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..evaluation.results import write_results
from ..loading import is_adapter, load_model, load_tokenizer
from ..tokenization import PAD_TOKEN
from .callbacks import add_callbacks, standard_callbacks
from .checkpoints import find_resume_checkpoint, prepare_output_dir
from .model_card import write_model_card
from .muon import use_muon
from .sharded import check_resume_processes, save_fsdp_model

logger = logging.getLogger(__name__)

__all__ = [
    "PAD_TOKEN",
    "final_eval_metrics",
    "finish_run",
    "fit_pad_token",
    "load_start",
    "set_eos_token",
    "prepare_output_dir",
    "save_final",
    "train_and_evaluate",
]


def set_eos_token(tokenizer, eos_token: str | None = None, required: bool = True) -> None:
    """Make ``eos_token`` (one of the tokenizer's tokens) its eos; a language model needs one to learn to stop."""
    if eos_token is not None:
        if eos_token not in tokenizer.get_vocab():
            raise ValueError(
                f"eos_token {eos_token!r} is not in the tokenizer's vocabulary; use one of its tokens"
            )
        tokenizer.eos_token = eos_token
    if required and tokenizer.eos_token is None:
        raise ValueError(
            "the tokenizer has no eos token, so the model could never learn to stop; set eos_token"
        )


def fit_pad_token(model, tokenizer) -> None:
    """The pad rule: ``tokenizer`` pads with a token of its own (``<|pad|>`` is added, with a warning, when it has
    none or pads with eos: padding is masked, eos must be trained), the embeddings grow to fit the tokenizer, and
    the model's config and generation config agree with it on the pad, eos and bos ids."""
    pad = tokenizer.pad_token_id
    if pad is None or pad == tokenizer.eos_token_id:
        logger.warning(
            "the tokenizer's pad token is %s: adding a distinct %r so that padding is masked but eos is trained "
            "(the model's embeddings grow by one row)",
            "missing" if pad is None else f"its eos token {tokenizer.eos_token!r}", PAD_TOKEN,
        )  # fmt: skip
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if model is None:  # the tokenizer alone (inspecting data)
        return
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    configs = [model.config] + [c for c in [getattr(model, "generation_config", None)] if c is not None]
    for config in configs:
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.bos_token_id = (
            tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        )


def load_start(model_args, task: str = "causal-lm", merge_adapter: bool | None = None,
               eos_token: str | None = None, **kwargs):  # fmt: skip
    """``(model, tokenizer)`` a stage starts from: ``model_args.model_name_or_path`` by hfpipe's one loading rule
    (a wrong head is refused there), with trl's ``ModelConfig`` settings, ``eos_token`` if given, and the pad
    rule applied.

    A peft adapter start is merged into its base when ``merge_adapter`` (default: yes); ``kwargs`` go to
    ``from_pretrained`` (``num_labels`` for a new classifier head...).
    """
    name = model_args.model_name_or_path
    if not name:
        raise ValueError(
            "no start model: set model_name_or_path (an hfpipe pretraining or SFT output, a GPT-2 directory, or "
            "any causal LM)"
        )
    if getattr(model_args, "dtype", None) not in (None, "auto"):
        kwargs["dtype"] = getattr(torch, model_args.dtype)
    for key in ("attn_implementation", "model_revision"):
        value = getattr(model_args, key, None)
        if value is not None:
            kwargs["revision" if key == "model_revision" else key] = value
    if merge_adapter is None:
        merge_adapter = is_adapter(str(name))
    model = load_model(name, task, merge_adapter=merge_adapter, **kwargs)
    tokenizer = load_tokenizer(name)
    set_eos_token(tokenizer, eos_token, required=task == "causal-lm")
    fit_pad_token(model, tokenizer)
    return model, tokenizer


def final_eval_metrics(trainer) -> dict:
    """The validation metrics after training: the last evaluation when it ran at the final step, else a new one
    (none without validation data); ``eval_loss_before`` too when training began with one."""
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    metrics = {"eval_loss_before": evals[0]["eval_loss"]} if evals and evals[0]["step"] == 0 else {}
    if evals and evals[-1]["step"] == trainer.state.global_step:
        metrics.update({k: v for k, v in evals[-1].items() if k.startswith("eval_")})
    elif trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    return metrics


def without_dataset_bars(make):
    """``make`` (a trainer class) to call with datasets' progress bars off: trl prepares each dataset in several
    ``map`` steps (Adding EOS, Tokenizing, Truncating...), one bar each; hfpipe's own long work keeps its bars."""

    def call(*args, **kwargs):
        import datasets

        was_on = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            return make(*args, **kwargs)
        finally:
            if was_on:
                datasets.enable_progress_bars()

    return call


def expect_tied_head_missing(model) -> None:
    """A checkpoint stores a tied output head once, as the token embedding. Trainer re-ties it on resume without
    a word only when the missing keys are the model's ``_keys_to_ignore_on_save``; otherwise it warns
    ``There were missing keys in the checkpoint model loaded: ['lm_head.weight']``. Those keys are never saved
    for a tied head anyway, so naming them changes no file."""
    config = getattr(model, "config", None)
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    if tied and getattr(config, "tie_word_embeddings", False):
        model._keys_to_ignore_on_save = set(model._keys_to_ignore_on_save or ()) | tied


def train_and_evaluate(trainer, callbacks=None) -> dict:
    """Train ``trainer`` with hfpipe's callbacks (``standard_callbacks()`` unless given), resuming from the newest
    complete checkpoint in ``output_dir``; returns the training and final validation metrics, with the tokens
    seen and tokens/s when they were counted."""
    add_callbacks(trainer, callbacks if callbacks is not None else standard_callbacks())
    args = trainer.args
    use_muon(trainer, getattr(args, "hfpipe_optimizer", None))  # `optimizer: muon`
    resume = args.resume_from_checkpoint
    if resume is None:
        config = (
            None if hasattr(trainer.model, "peft_config") else trainer.model.config
        )  # adapters: no config.json
        resume = find_resume_checkpoint(args.output_dir, config, is_main_process=args.process_index == 0)
    check_resume_processes(resume, args.world_size, trainer.is_fsdp_enabled)
    if resume:
        logger.info("resuming from %s", resume)
        expect_tied_head_missing(trainer.model)
    metrics = dict(trainer.train(resume_from_checkpoint=str(resume) if resume else None).metrics)
    metrics.update(final_eval_metrics(trainer))
    logged = [h for h in trainer.state.log_history if "tokens_seen" in h]
    if logged:
        metrics["tokens_seen"] = logged[-1]["tokens_seen"]
        runtime = metrics.get("train_runtime")
        if runtime:
            metrics["train_tokens_per_second"] = logged[-1]["tokens_seen"] / runtime
    return metrics


def save_final(model, tokenizer, output_dir: str | os.PathLike) -> Path:
    """Save ``model`` and ``tokenizer`` to a temp dir, then move the files into ``output_dir`` (beside the
    checkpoints). ``config.json`` moves last: a crash part-way never leaves a loadable half-model."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=out))
    try:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for src in sorted(tmp.iterdir(), key=lambda p: p.name == "config.json"):
            dst = out / src.name
            if dst.is_dir():
                shutil.rmtree(dst)
            os.replace(src, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def optimizer_name(trainer) -> str:
    """What trained the model, for results.json and the report: ``muon+adamw`` or the optimizer's class name."""
    from .muon import MuonWithAdamW

    inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # inside accelerate's wrapper
    if inner is None:
        return "none"
    return "muon+adamw" if isinstance(inner, MuonWithAdamW) else type(inner).__name__.lower()


def finish_run(trainer, tokenizer, stage: str, metrics: dict, *, model=None, card: dict | None = None,
               **extra) -> Path:  # fmt: skip
    """Save the final ``model`` (default: the trainer's), the tokenizer, ``results.json`` (the numeric ``metrics``
    and ``extra``) and the model card to ``output_dir``; push it to the Hub when ``push_to_hub`` is set.

    Every process must call it (an FSDP model is gathered from all ranks); the main process writes.
    """
    args = trainer.args
    out = Path(args.output_dir)
    if trainer.is_fsdp_enabled and model is None:
        save_fsdp_model(trainer, out)
    elif trainer.is_world_process_zero():
        save_final(model if model is not None else trainer.model, tokenizer, out)
    if not trainer.is_world_process_zero():
        return out
    trainer.save_state()  # trainer_state.json: the loss curves of the report card
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    write_results(out, str(out), numbers, stage=stage, **{"optimizer": optimizer_name(trainer), **extra})
    final = model if model is not None else trainer.model
    write_model_card(out, final, stage=stage, metrics=numbers, steps=trainer.state.global_step,
                     repo=args.hub_model_id, **(card or {}))  # fmt: skip
    if args.push_to_hub:
        push_folder(out, args.hub_model_id or out.name, stage, token=args.hub_token)
    return out


def push_folder(out: Path, repo_id: str, stage: str, token: str | None = None) -> None:
    """Upload the final model in ``out`` (not its checkpoints or logs) to the Hub repository ``repo_id``."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(out), commit_message=f"hfpipe {stage}: final model",
                      ignore_patterns=["checkpoint-*", "runs/*", ".*", "*.incomplete/*"])  # fmt: skip
    logger.info("pushed %s to the Hub: %s", out, repo_id)
