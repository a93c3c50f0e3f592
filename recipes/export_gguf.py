"""Export an hfpipe (or GPT-2) model to one GGUF file for llama.cpp, through GPT-2's layout: ``hfpipe export_gguf`` as a script (settings: ``--help``; the code: ``hfpipe/cli/export_gguf.py``)."""

from hfpipe.cli.export_gguf import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
