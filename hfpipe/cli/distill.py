"""Knowledge distillation: train a small hfpipe GPT on a larger teacher's soft targets.

    python recipes/distill.py --config recipes/configs/distill_quickstart.yaml \\
        --teacher_model_name_or_path outputs/quickstart --output_dir outputs/quickstart-distilled

Settings: trl's ScriptArguments (data source) and ModelConfig (``model_name_or_path``: a student to start from,
else a new one of ArchitectureArguments' shape), hfpipe's DataArguments, and DistillConfig (TrainingArguments
+ teacher_model_name_or_path, temperature, alpha). Prints student vs teacher perplexity, size and speed.
"""

from __future__ import annotations

from trl import ModelConfig, ScriptArguments

from hfpipe.data import DataArguments
from hfpipe.distillation import DistillConfig, distill, format_report
from hfpipe.pretraining import ArchitectureArguments
from hfpipe.recipe_args import parse_recipe_args, setup_logging

ARGUMENTS = (ScriptArguments, ModelConfig, ArchitectureArguments, DataArguments, DistillConfig)


def main(args: list[str] | None = None):
    """Distill and report; returns (trainer, comparison rows)."""
    setup_logging()
    parsed = parse_recipe_args(ARGUMENTS, args)
    trainer, rows = distill(*parsed)
    print(format_report(rows))
    print(f"\nstudent written to {trainer.args.output_dir}")
    return trainer, rows
