"""The loss-mask viewer: N examples exactly as recipes/sft.py will train on them, trained tokens highlighted.

    python recipes/inspect_sft_data.py --config recipes/configs/sft_alpaca.yaml \\
        --model_name_or_path outputs/quickstart --dataset_name instruction-data.json --num_examples 3

Takes the same config and keys as recipes/sft.py; prints the share of tokens trained, examples truncated
by max_length and examples dropped (no trained token left, empty response, ...).
"""

from __future__ import annotations

from trl import ModelConfig, ScriptArguments, SFTConfig

from hfpipe.recipe_args import parse_recipe_args, setup_logging
from hfpipe.sft.data import SFTArguments
from hfpipe.sft.inspect import InspectArguments, inspect_sft_data

ARGUMENTS = (ScriptArguments, SFTConfig, ModelConfig, SFTArguments, InspectArguments)


def main(args: list[str] | None = None) -> str:
    """Print (and return) the loss-mask report."""
    parsed = parse_recipe_args(ARGUMENTS, args)
    setup_logging(main_process=False)
    report = inspect_sft_data(*parsed)
    print(report)
    return report
