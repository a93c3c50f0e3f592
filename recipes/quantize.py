"""int8 weight-only quantization (torchao) of an hfpipe, GPT-2 or other Linear-based causal LM: ``hfpipe quantize`` as a script (settings: ``--help``; the code: ``hfpipe/cli/quantize.py``)."""

from hfpipe.cli.quantize import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
