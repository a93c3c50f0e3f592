"""Evaluate one or many checkpoints and write one table: perplexity, bits per byte, lm-eval tasks, LLM judge.

python recipes/evaluate_model.py --config recipes/configs/evaluate.yaml \
    --model_name_or_path outputs/quickstart outputs/sft --output_dir outputs/eval
"""

from trl import ScriptArguments

from hfpipe.evaluation.run import EvaluationArguments, evaluate_checkpoints
from hfpipe.recipe_args import parse_recipe_args, setup_logging

ARGUMENTS = (EvaluationArguments, ScriptArguments)


def main(args: list[str] | None = None):
    """Run the evaluation; returns the paths of the table files."""
    setup_logging()
    eval_args, script_args = parse_recipe_args(ARGUMENTS, args)
    paths = evaluate_checkpoints(eval_args, script_args)
    print(paths["markdown"].read_text(encoding="utf-8"))
    print("table: " + ", ".join(str(p) for p in paths.values()))
    return paths
