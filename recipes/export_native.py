"""Save an hfpipe GPT with Llama's layout as a native Llama or Qwen3 directory (and back): ``hfpipe export_native`` as a script (settings: ``--help``; the code: ``hfpipe/cli/export_native.py``)."""

from hfpipe.cli.export_native import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
