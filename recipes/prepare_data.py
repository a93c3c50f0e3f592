"""Clean, split, tokenize and pack a corpus once into token shards: ``hfpipe prepare_data`` as a script (settings: ``--help``; the code: ``hfpipe/cli/prepare_data.py``)."""

from hfpipe.cli.prepare_data import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
