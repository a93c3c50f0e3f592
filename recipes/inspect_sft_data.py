"""The loss-mask viewer: N examples exactly as recipes/sft.py will train on them, trained tokens highlighted: ``hfpipe inspect_sft_data`` as a script (settings: ``--help``; the code: ``hfpipe/cli/inspect_sft_data.py``)."""

from hfpipe.cli.inspect_sft_data import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
