"""Train a byte-level BPE (or character-level) tokenizer on any data source, or export an existing one.

python recipes/train_tokenizer.py --config recipes/configs/tokenizer_bpe.yaml --dataset_name corpus.txt
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hfpipe.data import DataArguments
from hfpipe.recipe_args import parse_recipe_args
from hfpipe.tokenization import TokenizerArguments, build_tokenizer, save_tokenizer

logger = logging.getLogger(__name__)


@dataclass
class TokenizerOutputArguments:
    output_dir: str = field(
        default="out/tokenizer", metadata={"help": "Directory the tokenizer is saved to."}
    )


def main(args: list[str] | None = None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data_args, tok_args, out_args = parse_recipe_args(
        [DataArguments, TokenizerArguments, TokenizerOutputArguments], args
    )
    tokenizer, bpt = build_tokenizer(tok_args, data_args)
    save_tokenizer(tokenizer, out_args.output_dir)
    logger.info("saved %d-token tokenizer to %s (held-out bytes/token: %s)", len(tokenizer), out_args.output_dir,
                "n/a" if bpt is None else f"{bpt:.3f}")  # fmt: skip
    return tokenizer, bpt


if __name__ == "__main__":
    main()
