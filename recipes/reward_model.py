"""Reward model on preference pairs with trl's RewardTrainer (the RLHF seeds' first step): ``hfpipe reward_model`` as a script (settings: ``--help``; the code: ``hfpipe/cli/reward_model.py``)."""

from hfpipe.cli.reward_model import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
