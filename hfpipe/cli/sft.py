"""Instruction fine-tuning (the book's chapter 7) with trl's SFTTrainer.

    python recipes/sft.py --config recipes/configs/sft_alpaca.yaml \\
        --model_name_or_path outputs/quickstart --dataset_name instruction-data.json --output_dir outputs/sft

Keys: trl's ScriptArguments, SFTConfig and ModelConfig (as in trl's own sft.py) plus hfpipe's SFTArguments.
Writes to output_dir: the model (or LoRA adapter; merged too with save_merged) with its tokenizer and chat
template, test_responses.json and results.json. Re-running with the same output_dir resumes.
"""

from __future__ import annotations

from trl import ModelConfig, ScriptArguments, SFTConfig

from hfpipe.recipe_args import parse_recipe_args, setup_logging
from hfpipe.sft.data import SFTArguments


def report(result) -> str:
    """The few lines a person wants at the end of a run."""
    from hfpipe.evaluation.answers import ANSWERS_FILE

    m, out = result.metrics, result.output_dir
    lines = [f"model saved to {out.resolve()} (format {result.data_format})"]
    if m.get("eval_loss") is not None:
        before = m.get("eval_loss_before")
        lines.append(
            "validation loss " + (f"{before:.3f} -> " if before is not None else "") + f"{m['eval_loss']:.3f}"
        )
    if result.answers:
        lines.append(
            f"test answers: {m['test_answers']} in {out / ANSWERS_FILE}; ended with eos {100 * m['eos_share']:.1f} %, "
            f"leaked template text {100 * m['template_leak_share']:.1f} %"
        )
        for a in result.answers[:3]:
            lines.append(f"  {a['instruction'][:70]!r} -> {a['response'][:100]!r}")
    lines.append(f"chat with it: hfpipe chat --model_name_or_path {out}")
    return "\n".join(lines)


ARGUMENTS = (ScriptArguments, SFTConfig, ModelConfig, SFTArguments)


def main(args: list[str] | None = None):
    """Run SFT; returns hfpipe.sft.train.SFTResult."""
    script_args, training_args, model_args, sft_args = parse_recipe_args(ARGUMENTS, args)
    from hfpipe.sft.train import run_sft  # the trainer's imports, once the settings parse (--help: never)

    setup_logging(training_args.process_index == 0)
    result = run_sft(script_args, training_args, model_args, sft_args)
    if result.trainer.is_world_process_zero():
        print(report(result))
    return result
