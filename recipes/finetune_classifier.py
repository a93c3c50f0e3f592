"""Fine-tune a causal GPT checkpoint (hfpipe-pretrained or converted GPT-2) as a text classifier: ``hfpipe finetune_classifier`` as a script (settings: ``--help``; the code: ``hfpipe/cli/finetune_classifier.py``)."""

from hfpipe.cli.finetune_classifier import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
