"""Train a byte-level BPE (or character-level) tokenizer on any data source, or export an existing one: ``hfpipe train_tokenizer`` as a script (settings: ``--help``; the code: ``hfpipe/cli/train_tokenizer.py``)."""

from hfpipe.cli.train_tokenizer import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
