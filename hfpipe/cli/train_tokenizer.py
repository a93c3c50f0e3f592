"""Train a byte-level BPE (or character-level) tokenizer on any data source, or export an existing one.

    python recipes/train_tokenizer.py --config recipes/configs/tokenizer_bpe.yaml --dataset_name corpus.txt

Settings: trl's ScriptArguments (dataset_name, dataset_config, dataset_train_split, dataset_streaming),
DataArguments (reading, cleaning, split), TokenizerArguments and output_dir.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from trl import ScriptArguments

from hfpipe.data import DataArguments
from hfpipe.recipe_args import parse_recipe_args, setup_logging
from hfpipe.tokenization import TokenizerArguments, save_tokenizer
from hfpipe.tokenizer_run import build_tokenizer

logger = logging.getLogger("hfpipe.train_tokenizer")


@dataclass
class TokenizerOutputArguments:
    output_dir: str = field(
        default="out/tokenizer", metadata={"help": "Directory the tokenizer is saved to."}
    )


ARGUMENTS = [ScriptArguments, DataArguments, TokenizerArguments, TokenizerOutputArguments]


def main(args: list[str] | None = None):
    """Train (or load) the tokenizer and save it to ``output_dir``; returns (tokenizer, held-out bytes/token)."""
    setup_logging()
    script_args, data_args, tok_args, out_args = parse_recipe_args(ARGUMENTS, args)
    tokenizer, bpt = build_tokenizer(tok_args, script_args, data_args)
    save_tokenizer(tokenizer, out_args.output_dir)
    logger.info("saved %d-token tokenizer to %s (held-out bytes/token: %s)", len(tokenizer), out_args.output_dir,
                "n/a" if bpt is None else f"{bpt:.3f}")  # fmt: skip
    return tokenizer, bpt
