"""Pretrain (or continue pretraining) a GPT with transformers' Trainer.

    accelerate launch recipes/pretrain.py --config recipes/configs/quickstart.yaml
    accelerate launch --config_file accelerate_configs/multi_gpu.yaml recipes/pretrain.py \\
        --config recipes/configs/gpt2_124m_fineweb_edu.yaml

Settings: defaults < YAML (--config) < command-line flags; keys are the fields of trl's ScriptArguments
(dataset_name, ...) and ModelConfig (model_name_or_path to continue a checkpoint, ...), and of hfpipe's
ArchitectureArguments, DataArguments, TokenizerArguments and PretrainConfig (TrainingArguments + a few).
Running the same command again resumes from the last complete checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from transformers import set_seed
from trl import ModelConfig, ScriptArguments

from hfpipe.data import DataArguments
from hfpipe.pretraining import ArchitectureArguments, PretrainConfig
from hfpipe.recipe_args import parse_recipe_args, setup_logging
from hfpipe.tokenization import TokenizerArguments

ARGUMENTS = (
    ScriptArguments,
    ModelConfig,
    ArchitectureArguments,
    DataArguments,
    TokenizerArguments,
    PretrainConfig,
)


def main(args: list[str] | None = None):
    """Run pretraining; the final model is in ``output_dir``. Returns the trainer."""
    script_args, model_args, arch_args, data_args, tok_args, train_args = parse_recipe_args(ARGUMENTS, args)
    from hfpipe.pretraining import pretrain

    setup_logging(train_args.should_log)
    set_seed(train_args.seed)
    trainer, metrics, sample = pretrain(script_args, model_args, arch_args, data_args, tok_args, train_args)
    if trainer.is_world_process_zero():
        out = Path(train_args.output_dir).resolve()
        print(f"\nmodel saved to {out}")
        if (out / "loss.png").is_file():
            print(f"loss plot: {out / 'loss.png'}")
        if "eval_loss" in metrics:
            print(f"validation loss {metrics['eval_loss']:.3f} (perplexity {metrics['eval_perplexity']:.1f})")
        print(f"sample: {train_args.sample_prompt}{sample}")
        print(
            "load it with:\n"
            "    from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"    model = AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True)\n"
            f"    tokenizer = AutoTokenizer.from_pretrained({str(out)!r}, trust_remote_code=True)"
        )
    return trainer
