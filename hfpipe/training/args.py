"""Settings of the pretraining recipe that transformers' ``TrainingArguments`` does not cover."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from transformers import IntervalStrategy, SchedulerType, TrainingArguments

from ..convert import load_gpt
from ..models.gpt import GPTConfig, GPTForCausalLM
from ..recipe_args import launched_on_cpu_only

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which model to train: a preset with overrides, or an existing checkpoint (continual pretraining)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Continue pretraining this hfpipe or GPT-2 checkpoint (dir or Hub id) instead of a new model."
        },
    )
    model_preset: str = field(default="tiny", metadata={"help": "gpt2-small/medium/large/xl or tiny."})
    context_length: int | None = field(
        default=None, metadata={"help": "Override the preset's context_length."}
    )
    emb_dim: int | None = field(default=None, metadata={"help": "Override the preset's emb_dim."})
    n_heads: int | None = field(default=None, metadata={"help": "Override the preset's n_heads."})
    n_layers: int | None = field(default=None, metadata={"help": "Override the preset's n_layers."})
    drop_rate: float | None = field(default=None, metadata={"help": "Override the preset's drop_rate."})
    qkv_bias: bool | None = field(default=None, metadata={"help": "Override the preset's qkv_bias."})
    tie_word_embeddings: bool | None = field(
        default=None, metadata={"help": "Share input and output embeddings."}
    )
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or flash_attention_2."})


def bf16_available() -> bool:
    """True where bf16 math is fast: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


@dataclass
class PretrainConfig(TrainingArguments):
    """``TrainingArguments`` with pretraining defaults, plus the sample prompt and MFU settings."""

    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision; None = on where the hardware has fast bf16."}
    )
    eval_strategy: IntervalStrategy | str = field(
        default="steps", metadata={"help": "When to evaluate: no, steps or epoch."}
    )
    eval_steps: float | None = field(default=100, metadata={"help": "Evaluate every this many steps."})
    logging_steps: float = field(default=10, metadata={"help": "Log every this many steps."})
    save_steps: float = field(default=100, metadata={"help": "Checkpoint every this many steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept in output_dir."})
    lr_scheduler_type: SchedulerType | str = field(
        default="cosine_with_min_lr", metadata={"help": "Warm-up, then cosine decay."}
    )
    lr_scheduler_kwargs: dict | str | None = field(
        default_factory=lambda: {"min_lr_rate": 0.1},
        metadata={"help": "Floor of the cosine, as a fraction of lr."},
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay."})
    report_to: None | str | list[str] = field(
        default="tensorboard", metadata={"help": "Loggers, e.g. tensorboard."}
    )
    sample_prompt: str = field(
        default="Every effort moves you", metadata={"help": "Prompt continued at each eval."}
    )
    sample_max_new_tokens: int = field(default=40, metadata={"help": "Tokens generated for the sample."})
    peak_tflops: float | None = field(
        default=None, metadata={"help": "Hardware peak TFLOP/s for MFU; None measures a matmul at start."}
    )

    def __post_init__(self):
        if self.bf16 is None:
            self.bf16 = bf16_available()
        if launched_on_cpu_only() and self.fsdp:
            raise ValueError(
                "fsdp needs GPUs: accelerate runs FSDP only on GPU-type devices and would silently fall back "
                "to DDP on this CPU-only machine; drop fsdp/fsdp_config, or launch on GPUs"
            )
        super().__post_init__()


_OVERRIDES = (
    "context_length",
    "emb_dim",
    "n_heads",
    "n_layers",
    "drop_rate",
    "qkv_bias",
    "tie_word_embeddings",
)


def build_model(model_args: ModelArguments, tokenizer) -> GPTForCausalLM:
    """A new GPT from preset + overrides sized to ``tokenizer``, or the checkpoint to continue from."""
    special_ids = {
        "bos_token_id": tokenizer.bos_token_id
        if tokenizer.bos_token_id is not None
        else tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if model_args.model_name_or_path:
        model = load_gpt(model_args.model_name_or_path, attn_implementation=model_args.attn_implementation)
        if len(tokenizer) > model.config.vocab_size:
            logger.info(
                "resizing embeddings %d -> %d for the tokenizer", model.config.vocab_size, len(tokenizer)
            )
            model.resize_token_embeddings(len(tokenizer))
        for key, value in special_ids.items():
            setattr(model.config, key, value)
            setattr(model.generation_config, key, value)
        return model
    overrides = {k: getattr(model_args, k) for k in _OVERRIDES if getattr(model_args, k) is not None}
    config = GPTConfig.from_preset(
        model_args.model_preset, vocab_size=len(tokenizer), **overrides, **special_ids
    )
    return GPTForCausalLM._from_config(config, attn_implementation=model_args.attn_implementation)
