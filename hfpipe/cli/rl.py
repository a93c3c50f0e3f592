"""Online RL (the RLHF step) with trl's GRPOTrainer against a reward model and/or Python rewards.

    python recipes/rl.py --config recipes/configs/rl_preference.yaml --model_name_or_path outputs/sft-alpaca \\
        --reward_model_path outputs/reward --dataset_name instruction-data-with-preference.json

Keys: trl's ScriptArguments, ModelConfig and GRPOConfig (num_generations, max_completion_length, beta, ...),
plus hfpipe's PreferenceDataArguments (prompts from the train split) and RLArguments (reward_model_path,
reward_functions, prompt_overflow). Logs the mean reward of every step; writes the policy (or adapter),
its tokenizer and results.json (reward over the first and last 10 % of the steps) to output_dir.
"""

from __future__ import annotations

from trl import GRPOConfig, ModelConfig, ScriptArguments

from hfpipe.preference.data import PreferenceDataArguments
from hfpipe.preference.rl import RLArguments, run_rl
from hfpipe.recipe_args import parse_recipe_args, setup_logging

ARGUMENTS = (ScriptArguments, ModelConfig, PreferenceDataArguments, RLArguments, GRPOConfig)


def report(result) -> str:
    """The few lines a person wants at the end of a run."""
    m, out = result.metrics, result.output_dir
    lines = [f"policy saved to {out.resolve()}"]
    if "reward_first_10pct" in m:
        lines.append(
            f"mean reward over {len(result.curve)} logged steps: first 10 % {m['reward_first_10pct']:.3f} -> "
            f"last 10 % {m['reward_last_10pct']:.3f}"
        )
    if m.get("truncated_prompts"):
        lines.append(f"prompts cut from the left to fit the context: {m['truncated_prompts']}")
    lines.append(f"chat with it: hfpipe chat --model_name_or_path {out}")
    return "\n".join(lines)


def main(args: list[str] | None = None):
    """Run GRPO; returns hfpipe.preference.rl.RLResult."""
    script_args, model_args, data_args, rl_args, training_args = parse_recipe_args(ARGUMENTS, args)
    setup_logging(training_args.process_index == 0)
    result = run_rl(script_args, training_args, model_args, data_args, rl_args)
    if result.trainer.is_world_process_zero():
        print(report(result))
    return result
