"""Preference tuning with DPO (the book's chapter 7 appendix) on trl's DPOTrainer: ``hfpipe dpo`` as a script (settings: ``--help``; the code: ``hfpipe/cli/dpo.py``)."""

from hfpipe.cli.dpo import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
