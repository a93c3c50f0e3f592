"""LoRA via peft, configured by trl's ``ModelConfig`` (``use_peft``, ``lora_r``, ``lora_alpha``, ...).

    model = apply_lora(load_model("ckpt"), model_args, "CAUSAL_LM")
    ...train...
    model.save_pretrained("adapter")                  # reload: hfpipe.loading.load_model("adapter")
    merge_lora(model).save_pretrained("merged")       # plain GPTForCausalLM, no peft needed to load it

With ``lora_target_modules`` unset, an hfpipe GPT gets adapters on every attention and feed-forward linear.
For ``SEQ_CLS`` peft itself adds the ``score`` head to ``modules_to_save``: the head trains in full and is
saved inside the adapter.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # peft and the model classes load when LoRA is used, not when a recipe builds its parser
    from peft import LoraConfig, PeftModel, TaskType
    from transformers import PreTrainedModel
    from trl import ModelConfig

logger = logging.getLogger(__name__)

# Every linear of a GPT block, for every architecture: attention (fused qkv, output projection) and
# feed-forward (fc1 and fc2; swiglu's fused gate_up and fc2). peft skips the names a model lacks.
DEFAULT_TARGET_MODULES = ["qkv", "out_proj", "fc1", "gate_up", "fc2"]


def build_lora_config(model_args: ModelConfig, task_type: str | TaskType, model=None) -> LoraConfig:
    """A peft ``LoraConfig`` from trl's ``model_args`` for ``task_type``; hfpipe's linears by default."""
    from peft import TaskType
    from trl import get_peft_config

    from .models.gpt import GPTConfig

    if model_args.lora_r <= 0:
        raise ValueError(f"lora_r must be a positive integer, got {model_args.lora_r}")
    if not 0.0 <= model_args.lora_dropout < 1.0:
        raise ValueError(f"lora_dropout must be in [0, 1), got {model_args.lora_dropout}")
    use_peft, task = model_args.use_peft, model_args.lora_task_type
    model_args.use_peft, model_args.lora_task_type = True, TaskType(task_type).value
    try:
        config = get_peft_config(model_args)
    finally:
        model_args.use_peft, model_args.lora_task_type = use_peft, task
    targets = config.target_modules
    if isinstance(targets, str) and targets.isidentifier() and targets != "all-linear":
        # trl turns a one-item list into a string, which peft reads as a regex over full module names
        config.target_modules = {targets}
    if config.target_modules is None and (
        model is None or getattr(model.config, "model_type", None) == GPTConfig.model_type
    ):
        present = (
            {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()} if model is not None else None
        )
        config.target_modules = {m for m in DEFAULT_TARGET_MODULES if present is None or m in present}
    return config


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of any torch module."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def log_parameters(model, prefix: str = "") -> tuple[int, int]:
    """Log ``trainable params: X || all params: Y || trainable%: Z`` and return ``(trainable, total)``."""
    trainable, total = count_parameters(model)
    msg = f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
    logger.info("%s%s", prefix, msg)
    return trainable, total


def apply_lora(model: PreTrainedModel, model_args: ModelConfig, task_type: str | TaskType) -> PeftModel:
    """Wrap ``model`` with LoRA adapters (base weights frozen) and log its trainable/total parameters."""
    from peft import get_peft_model

    config = build_lora_config(model_args, task_type, model)
    targets = config.target_modules
    if isinstance(targets, (list, set, tuple)):
        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = sorted(m for m in targets if m not in present)
        if missing:
            raise ValueError(
                f"lora_target_modules {missing} match no module of {type(model).__name__}; "
                f"hfpipe GPT linears are {DEFAULT_TARGET_MODULES}"
            )
    peft_model = get_peft_model(model, config)
    log_parameters(peft_model, prefix="LoRA: ")
    return peft_model


def merge_lora(peft_model: PeftModel) -> PreTrainedModel:
    """Fold the adapters (and any ``modules_to_save`` copies) into the base weights: a plain transformers model."""
    return peft_model.merge_and_unload()


__all__ = [
    "DEFAULT_TARGET_MODULES",
    "apply_lora",
    "build_lora_config",
    "count_parameters",
    "log_parameters",
    "merge_lora",
]
