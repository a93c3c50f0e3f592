"""Pretraining and continual pretraining on transformers' ``Trainer``.

    trainer, metrics = pretrain(script_args, model_args, arch_args, data_args, tok_args, train_args)

Settings come from trl's ``ScriptArguments`` (the data source) and ``ModelConfig`` (``model_name_or_path``
to continue a checkpoint, ``attn_implementation``, ``dtype``), plus hfpipe's ``ArchitectureArguments`` (a new
model's shape), ``DataArguments``, ``TokenizerArguments`` and ``PretrainConfig`` (``TrainingArguments``
with pretraining defaults).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import IntervalStrategy, SchedulerType, TrainingArguments

from . import hardware
from .hardware import launched_on_cpu_only
from .models.gpt import GPT_ARCHITECTURES, GPT_PRESETS, GPTConfig  # the configuration only: no torch modeling

# Only what the settings need loads with this module, so `pretrain --help` is fast; the trainer, the data and
# the model classes load in the functions that use them.
if TYPE_CHECKING:
    from .models.gpt import GPTForCausalLM

logger = logging.getLogger(__name__)


@dataclass
class ArchitectureArguments:
    """The shape of a new model: a size preset, an architecture, overrides (ignored when continuing a checkpoint)."""

    model_preset: str = field(default="tiny", metadata={"help": "gpt2-small/medium/large/xl or tiny."})
    architecture: str = field(
        default="book",
        metadata={
            "help": "book (GPT-2 layout), llama (rope, rmsnorm, swiglu, GQA) or nanochat (rope, qk-norm, relu2)."
        },
    )
    n_kv_heads: int | None = field(
        default=None, metadata={"help": "Key/value heads (grouped-query attention); must divide n_heads."}
    )
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
    activation_function: str | None = field(
        default=None, metadata={"help": "gelu_pytorch_tanh (the book's) or gelu (exact, nanoGPT's)."}
    )

    def __post_init__(self):
        for name, choices in (("model_preset", GPT_PRESETS), ("architecture", GPT_ARCHITECTURES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {sorted(choices)}")
        self.config()  # a shape that cannot be built is refused before any data is prepared

    def config(self, **fields) -> GPTConfig:
        """The new model's config: preset, architecture and overrides, plus ``fields`` (vocab size, token ids)."""
        overrides = {k: getattr(self, k) for k in _OVERRIDES if getattr(self, k) is not None}
        return GPTConfig.from_preset(self.model_preset, self.architecture, **overrides, **fields)


@dataclass
class PretrainConfig(TrainingArguments):
    """``TrainingArguments`` with pretraining defaults, plus the sample prompt and MFU settings."""

    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision; unset = on where the hardware has fast bf16."}
    )
    eval_strategy: IntervalStrategy | str = field(default="steps", metadata={"help": "no, steps or epoch."})
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
    sample_temperature: float = field(
        default=0.8, metadata={"help": "Sampling temperature of the sample (with top-k 25); 0 = greedy."}
    )
    peak_tflops: float | None = field(
        default=None, metadata={"help": "Hardware peak TFLOP/s for MFU; None measures a matmul at start."}
    )

    def __post_init__(self):
        if self.bf16 is None:  # built in code rather than by the recipe parser
            self.bf16 = hardware.fast_bf16_available()
        if self.bf16 and not hardware.has_accelerator():
            self.use_cpu = True
        # TrainingArguments.fsdp, or an FSDP accelerate config (accelerate launch sets ACCELERATE_USE_FSDP)
        fsdp = self.fsdp or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
        if launched_on_cpu_only() and fsdp:
            raise ValueError(
                "fsdp needs GPUs: accelerate selects FSDP only for GPU-type devices and would silently run "
                "DDP on this CPU-only machine; drop fsdp/fsdp_config (or the FSDP accelerate config), or "
                "launch on GPUs"
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
    "activation_function",
    "n_kv_heads",
)


def build_model(model_args, arch_args: ArchitectureArguments, tokenizer) -> GPTForCausalLM:
    """A new GPT from preset + overrides sized to ``tokenizer``, or the checkpoint ``model_args`` names."""
    from .loading import load_model
    from .models.gpt import GPTForCausalLM

    special_ids = {
        "bos_token_id": tokenizer.bos_token_id
        if tokenizer.bos_token_id is not None
        else tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    attn = model_args.attn_implementation or "sdpa"
    if model_args.model_name_or_path:
        model = load_model(model_args.model_name_or_path, attn_implementation=attn)
        if not isinstance(model, GPTForCausalLM):
            raise ValueError(
                f"{model_args.model_name_or_path} is a {type(model).__name__}; pretraining continues hfpipe GPT "
                "or GPT-2 checkpoints"
            )
        if len(tokenizer) > model.config.vocab_size:
            logger.info(
                "resizing embeddings %d -> %d for the tokenizer", model.config.vocab_size, len(tokenizer)
            )
            model.resize_token_embeddings(len(tokenizer))
        for key, value in special_ids.items():
            setattr(model.config, key, value)
            setattr(model.generation_config, key, value)
        return model
    config = arch_args.config(vocab_size=len(tokenizer), **special_ids)
    return GPTForCausalLM._from_config(config, attn_implementation=attn)


def collate_blocks(features: list[dict]) -> dict:
    """Stack packed blocks into a batch; ids stored as int32 (half the disk) become int64 for the loss."""
    from transformers import default_data_collator

    batch = default_data_collator(features)
    return {
        k: v.long() if v.dtype in (torch.int32, torch.int16, torch.uint8) else v for k, v in batch.items()
    }


def check_dataset_sizes(train_set, eval_set, train_args) -> None:
    """Fail early, naming the fix, when there is not one training batch or nothing to evaluate on."""
    global_batch = train_args.per_device_train_batch_size * train_args.world_size
    if len(train_set) < global_batch:
        raise ValueError(
            f"the training set has {len(train_set)} blocks, fewer than one batch ({global_batch}); "
            "add data, or lower block_size or per_device_train_batch_size"
        )
    eval_batch = train_args.per_device_eval_batch_size * train_args.world_size
    n_eval = 0 if eval_set is None else len(eval_set)
    if train_args.eval_strategy != "no" and (
        n_eval == 0 or (train_args.dataloader_drop_last and n_eval < eval_batch)
    ):
        raise ValueError(
            f"the validation set has {n_eval} blocks, too few to evaluate (batch {eval_batch}"
            f"{', dataloader_drop_last' if train_args.dataloader_drop_last else ''}); raise "
            "validation_size or add data, or set eval_strategy: 'no'"
        )


def get_tokenizer(tok_args, model_args, script_args, data_args, out: Path):
    """The tokenizer named in the config, the checkpoint's own, or one trained on the corpus (``out/tokenizer``)."""
    from .loading import load_tokenizer
    from .tokenizer_run import tokenizer_for_run

    if tok_args.tokenizer_name_or_path:
        return load_tokenizer(tok_args.tokenizer_name_or_path)
    if model_args.model_name_or_path:
        return load_tokenizer(model_args.model_name_or_path)
    return tokenizer_for_run(tok_args, script_args, data_args, out / "tokenizer")


def pretrain(script_args, model_args, arch_args, data_args, tok_args, train_args):
    """Run pretraining and save the final model, tokenizer, loss plot and model card to ``output_dir``.

    Returns ``(trainer, metrics, sample)``. Running again with the same settings resumes from the last
    complete checkpoint.
    """
    from datasets import IterableDataset
    from transformers import Trainer

    from .data import build_lm_datasets
    from .data.stdlib_corpus import stdlib_corpus_path
    from .loading import check_exists
    from .training.callbacks import generate_sample, standard_callbacks
    from .training.checkpoints import find_resume_checkpoint
    from .training.run import finish_run, prepare_output_dir, train_and_evaluate
    from .training.throughput import flops_per_token, measure_matmul_peak

    if model_args.use_peft:
        raise ValueError("use_peft is for the fine-tuning recipes; pretraining trains every weight")
    out = Path(train_args.output_dir)
    for name, what in (
        (tok_args.tokenizer_name_or_path, "tokenizer"),
        (model_args.model_name_or_path, "model"),
    ):
        if name:
            check_exists(name, what)  # a typo fails before anything is written
    prepare_output_dir(train_args)
    with train_args.main_process_first(desc="tokenizer"):
        if script_args.dataset_name is None and data_args.packed_dataset_path is None:
            script_args.dataset_name = str(stdlib_corpus_path())
            logger.info("no dataset_name given: using the embedded corpus of standard-library docstrings")
        tokenizer = get_tokenizer(tok_args, model_args, script_args, data_args, out)
    model = build_model(model_args, arch_args, tokenizer)
    tokenizer.model_max_length = model.config.context_length
    # early: another model's checkpoint in output_dir fails before the data is prepared
    find_resume_checkpoint(out, model.config, is_main_process=train_args.process_index == 0)

    with train_args.main_process_first(desc="dataset preparation"):
        lm_datasets = build_lm_datasets(
            script_args, data_args, tokenizer, max_context=model.config.context_length
        )
    train_set, eval_set = lm_datasets["train"], lm_datasets.get("validation")
    if isinstance(train_set, IterableDataset):  # streaming: sizes are unknown, Trainer needs max_steps
        if train_args.max_steps <= 0:
            raise ValueError("streaming datasets have no length: set max_steps")
        block_size = len(next(iter(train_set))["input_ids"])
    else:
        check_dataset_sizes(train_set, eval_set, train_args)
        block_size = len(train_set[0]["input_ids"])
    global_batch = train_args.per_device_train_batch_size * train_args.world_size
    tokens_per_step = global_batch * train_args.gradient_accumulation_steps * block_size
    # MFU against the peak of the dtype the matmuls run in (bf16 only where it is native: else fp32's)
    native_bf16 = train_args.bf16 and hardware.fast_bf16_available()
    peak = (
        train_args.peak_tflops * 1e12
        if train_args.peak_tflops
        else measure_matmul_peak(torch.bfloat16 if native_bf16 else torch.float32)
    )
    count = lambda d: "streamed" if isinstance(d, IterableDataset) else f"{len(d or []):,}"  # noqa: E731
    logger.info(
        "model: %s parameters, %d layers x %d dims, context %d | %s train / %s validation blocks of %d tokens | "
        "%s tokens per optimizer step | %s",
        f"{model.num_parameters():,}", model.config.n_layers, model.config.emb_dim, model.config.context_length,
        count(train_set), count(eval_set), block_size, f"{tokens_per_step:,}",
        "bf16 autocast" if train_args.bf16 else "fp32",
    )  # fmt: skip
    callbacks = standard_callbacks(
        tokenizer, train_args.sample_prompt, train_args.sample_max_new_tokens, train_args.sample_temperature,
        tokens_per_step, flops_per_token(model.config, block_size), peak,
    )  # fmt: skip
    trainer = Trainer(
        model=model,
        args=train_args,
        train_dataset=train_set,
        eval_dataset=eval_set if train_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        data_collator=collate_blocks,
    )
    metrics = train_and_evaluate(trainer, callbacks)
    sample = generate_sample(
        model, tokenizer, train_args.sample_prompt, train_args.sample_max_new_tokens,
        train_args.sample_temperature, seed=train_args.seed,
    )  # fmt: skip
    dataset = data_args.packed_dataset_path or script_args.dataset_name
    finish_run(trainer, tokenizer, "pretrain", metrics, dataset=dataset,
               card={"dataset": dataset, "prompt": train_args.sample_prompt, "sample": sample})  # fmt: skip
    return trainer, metrics, sample
