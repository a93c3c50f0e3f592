"""Reward model on preference pairs with trl's RewardTrainer (the RLHF seeds' first step).

    python recipes/reward_model.py --config recipes/configs/reward_preference.yaml \\
        --model_name_or_path outputs/sft-alpaca --dataset_name instruction-data-with-preference.json

Keys: trl's ScriptArguments, ModelConfig (use_peft for LoRA) and RewardConfig, plus hfpipe's
PreferenceDataArguments (the 85/10/5 split). Writes to output_dir a one-label classifier (LoRA merged) with
its tokenizer, and results.json with held-out pairwise accuracy and mean margin, before and after.
"""

from __future__ import annotations

from trl import ModelConfig, RewardConfig, ScriptArguments

from hfpipe.preference.data import PreferenceDataArguments
from hfpipe.preference.reward import run_reward_model
from hfpipe.recipe_args import parse_recipe_args, setup_logging

ARGUMENTS = (ScriptArguments, ModelConfig, PreferenceDataArguments, RewardConfig)


def report(result) -> str:
    """The few lines a person wants at the end of a run."""
    m, out = result.metrics, result.output_dir
    lines = [f"reward model saved to {out.resolve()}"]
    if "test_accuracy" in m:
        lines.append(
            f"held-out pairs ({m['test_pairs']}): accuracy {100 * m['test_accuracy_before']:.1f} % -> "
            f"{100 * m['test_accuracy']:.1f} %, mean margin {m['test_margin_before']:.3f} -> {m['test_margin']:.3f}"
        )
    if m.get("dropped_pairs"):
        lines.append(f"dropped pairs: {result.dropped}")
    lines.append(f'score text: pipeline("text-classification", model="{out}", function_to_apply="none")')
    return "\n".join(lines)


def main(args: list[str] | None = None):
    """Train a reward model; returns hfpipe.preference.reward.RewardResult."""
    script_args, model_args, data_args, training_args = parse_recipe_args(ARGUMENTS, args)
    setup_logging(training_args.process_index == 0)
    result = run_reward_model(script_args, training_args, model_args, data_args)
    if result.trainer.is_world_process_zero():
        print(report(result))
    return result
