"""Chat with a model from recipes/sft.py: streamed answers, multi-turn history, /reset and /quit: ``hfpipe chat`` as a script (settings: ``--help``; the code: ``hfpipe/cli/chat.py``)."""

from hfpipe.cli.chat import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
