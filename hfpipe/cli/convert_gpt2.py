"""Convert a GPT-2 checkpoint (Hub id such as ``gpt2``, or a local directory) to hfpipe, and back.

python recipes/convert_gpt2.py --model_name_or_path gpt2 --output_dir gpt2-hfpipe
python recipes/convert_gpt2.py --model_name_or_path gpt2-hfpipe --output_dir gpt2-back --direction to_gpt2
"""

from dataclasses import dataclass, field

from hfpipe.loading import convert_checkpoint
from hfpipe.recipe_args import parse_recipe_args, setup_logging


@dataclass
class ConvertArguments:
    model_name_or_path: str = field(metadata={"help": "GPT-2 (to_hfpipe) or hfpipe (to_gpt2) checkpoint"})
    output_dir: str = field(metadata={"help": "where to write the converted model and tokenizer"})
    direction: str = field(default="to_hfpipe", metadata={"help": "to_hfpipe or to_gpt2"})


ARGUMENTS = (ConvertArguments,)


def main(args: list[str] | None = None):
    """Run the conversion; returns the output directory."""
    (cfg,) = parse_recipe_args(ARGUMENTS, args)
    setup_logging()
    path = convert_checkpoint(cfg.model_name_or_path, cfg.output_dir, cfg.direction)
    print(f"converted model written to {path}")
    return path
