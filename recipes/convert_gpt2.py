"""Convert a GPT-2 checkpoint (Hub id such as ``gpt2``, or a local directory) to hfpipe, and back: ``hfpipe convert_gpt2`` as a script (settings: ``--help``; the code: ``hfpipe/cli/convert_gpt2.py``)."""

from hfpipe.cli.convert_gpt2 import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
