"""LoRA via peft for hfpipe GPT models: config from recipe arguments, wrap, report, merge.

    model = apply_lora(load_gpt("ckpt"), LoraArguments(lora_r=16), "CAUSAL_LM")
    ...train...
    model.save_pretrained("adapter")                  # reload: AutoPeftModelForCausalLM.from_pretrained("adapter")
    merge_lora(model).save_pretrained("merged")       # plain GPTForCausalLM, no peft needed to load it

For ``SEQ_CLS`` peft itself adds the ``score`` head to ``modules_to_save``: the head trains in full and is
saved inside the adapter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

# Every linear of a GPT block: attention (fused qkv, output projection) and feed-forward.
DEFAULT_TARGET_MODULES = ["qkv", "out_proj", "fc1", "fc2"]


@dataclass
class LoraArguments:
    """LoRA settings, as flat recipe keys."""

    lora_r: int = field(default=16, metadata={"help": "rank of the LoRA update matrices"})
    lora_alpha: float = field(
        default=16, metadata={"help": "LoRA scaling numerator (update scaled by alpha / r)"}
    )
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA branch input"})
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(DEFAULT_TARGET_MODULES),
        metadata={
            "help": "names of the linears to adapt (default: attention qkv/out_proj and feed-forward fc1/fc2)"
        },
    )
    lora_modules_to_save: list[str] | None = field(
        default=None, metadata={"help": "extra modules trained in full and saved with the adapter"}
    )


def build_lora_config(args: LoraArguments, task_type: str | TaskType) -> LoraConfig:
    """A peft ``LoraConfig`` from ``args`` for ``task_type`` (``"CAUSAL_LM"`` or ``"SEQ_CLS"``)."""
    if args.lora_r <= 0:
        raise ValueError(f"lora_r must be a positive integer, got {args.lora_r}")
    if not 0.0 <= args.lora_dropout < 1.0:
        raise ValueError(f"lora_dropout must be in [0, 1), got {args.lora_dropout}")
    if not args.lora_target_modules:
        raise ValueError("lora_target_modules is empty; name at least one linear, e.g. qkv out_proj fc1 fc2")
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=list(args.lora_target_modules),
        modules_to_save=list(args.lora_modules_to_save) if args.lora_modules_to_save else None,
        task_type=TaskType(task_type),
    )


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


def apply_lora(model: PreTrainedModel, args: LoraArguments, task_type: str | TaskType) -> PeftModel:
    """Wrap ``model`` with LoRA adapters (base weights frozen) and log its trainable/total parameters."""
    config = build_lora_config(args, task_type)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in config.target_modules if m not in present]
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
    "LoraArguments",
    "apply_lora",
    "build_lora_config",
    "count_parameters",
    "log_parameters",
    "merge_lora",
]
