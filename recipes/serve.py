"""Serve a model with an OpenAI-compatible API (completions, chat, streaming), batching concurrent requests: ``hfpipe serve`` as a script (settings: ``--help``; the code: ``hfpipe/cli/serve.py``)."""

from hfpipe.cli.serve import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
