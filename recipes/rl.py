"""Online RL (the RLHF step) with trl's GRPOTrainer against a reward model and/or Python rewards: ``hfpipe rl`` as a script (settings: ``--help``; the code: ``hfpipe/cli/rl.py``)."""

from hfpipe.cli.rl import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
