"""Preference tuning with DPO (the book's chapter 7 appendix) on trl's DPOTrainer.

    python recipes/dpo.py --config recipes/configs/dpo_preference.yaml \\
        --model_name_or_path outputs/sft-alpaca --dataset_name instruction-data-with-preference.json

Keys: trl's ScriptArguments, ModelConfig (use_peft: LoRA, reference = adapter disabled) and DPOConfig (beta,
loss_type, precompute_ref_log_probs, ...), plus hfpipe's PreferenceDataArguments and DPOArguments. Writes to
output_dir the model (or adapter) with its tokenizer, dpo_answers.json (test answers before and after, side by
side) and results.json. Re-running with the same output_dir resumes.
"""

from __future__ import annotations

from trl import DPOConfig, ModelConfig, ScriptArguments

from hfpipe.preference.data import PreferenceDataArguments
from hfpipe.preference.dpo import ANSWERS_FILE, DPOArguments, run_dpo
from hfpipe.recipe_args import parse_recipe_args, setup_logging

ARGUMENTS = (ScriptArguments, ModelConfig, PreferenceDataArguments, DPOArguments, DPOConfig)


def report(result) -> str:
    """The few lines a person wants at the end of a run."""
    m, out = result.metrics, result.output_dir
    lines = [f"model saved to {out.resolve()}"]
    if "test_rewards/accuracies" in m:
        lines.append(
            f"held-out pairs ({m['test_pairs']}): reward accuracy {100 * m['test_rewards/accuracies_before']:.1f} % "
            f"-> {100 * m['test_rewards/accuracies']:.1f} %, reward margin {m['test_rewards/margins_before']:.3f} "
            f"-> {m['test_rewards/margins']:.3f}"
        )
    if result.answers:
        lines.append(f"test answers before/after: {len(result.answers)} in {out / ANSWERS_FILE}")
        for a in result.answers[:2]:
            lines.append(
                f"  {a['instruction'][:60]!r}\n    before: {a['before'][:90]!r}\n    after:  {a['after'][:90]!r}"
            )
    lines.append(f"chat with it: hfpipe chat --model_name_or_path {out}")
    return "\n".join(lines)


def main(args: list[str] | None = None):
    """Run DPO; returns hfpipe.preference.dpo.DPOResult."""
    script_args, model_args, data_args, dpo_args, training_args = parse_recipe_args(ARGUMENTS, args)
    setup_logging(training_args.process_index == 0)
    result = run_dpo(script_args, training_args, model_args, data_args, dpo_args)
    if result.trainer.is_world_process_zero():
        print(report(result))
    return result
