"""Pretrain (or continue pretraining) a GPT with transformers' Trainer: ``hfpipe pretrain`` as a script (settings: ``--help``; the code: ``hfpipe/cli/pretrain.py``)."""

from hfpipe.cli.pretrain import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
