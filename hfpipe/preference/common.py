"""What the reward-model, DPO and RL runs share beyond the run lifecycle (``hfpipe.training.run``): the start
model with the SFT template, the length cap, and what to save when the start was an adapter."""

from __future__ import annotations

import copy
import logging

from hfpipe.data.instructions import set_chat_template
from hfpipe.loading import is_adapter, model_context_length, resolve_max_length
from hfpipe.lora import merge_lora
from hfpipe.training.run import load_start

logger = logging.getLogger(__name__)


def load_preference_start(model_args, task: str = "causal-lm", fmt: str = "alpaca", **kwargs):
    """``(model, tokenizer)`` by the lifecycle's start rule, an SFT LoRA adapter merged into its base (that merged
    model is the policy's start and the reference), with the chat template the pairs are rendered with."""
    model, tokenizer = load_start(model_args, task, merge_adapter=True, **kwargs)
    set_chat_template(tokenizer, "alpaca" if fmt == "alpaca" else "text")  # "text": keep a template it has
    return model, tokenizer


def cap_max_length(training_args, model) -> None:
    """``training_args.max_length`` capped at the model's context (trl would let it overflow)."""
    training_args.max_length = resolve_max_length(
        training_args.max_length, model_context_length(model.config)
    )


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
