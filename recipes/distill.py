"""Knowledge distillation: train a small hfpipe GPT on a larger teacher's soft targets: ``hfpipe distill`` as a script (settings: ``--help``; the code: ``hfpipe/cli/distill.py``)."""

from hfpipe.cli.distill import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
