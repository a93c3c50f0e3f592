"""Run a pipeline of hfpipe stages from one YAML: ``hfpipe pipeline`` as a script (``hfpipe/cli/pipeline.py``)."""

from hfpipe.cli.pipeline import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
