"""Instruction fine-tuning (the book's chapter 7) with trl's SFTTrainer: ``hfpipe sft`` as a script (settings: ``--help``; the code: ``hfpipe/cli/sft.py``)."""

from hfpipe.cli.sft import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
