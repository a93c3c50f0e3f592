"""Clean, split, tokenize and pack a corpus once; training runs then load it with packed_dataset_path.

    python recipes/prepare_data.py --config recipes/configs/prepare_clm.yaml \
        --dataset_name corpus.txt --tokenizer_name_or_path out/tokenizer --output_dir out/packed
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from datasets import Dataset, DatasetDict

from hfpipe.data import FEATURES, DataArguments, prepare_dataset, resolve_block_size, save_packed_dataset
from hfpipe.recipe_args import parse_recipe_args
from hfpipe.tokenization import TokenizerArguments, load_tokenizer

logger = logging.getLogger(__name__)


@dataclass
class PrepareOutputArguments:
    output_dir: str = field(
        default="out/packed", metadata={"help": "Directory the packed dataset is saved to."}
    )


def main(args: list[str] | None = None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data_args, tok_args, out_args = parse_recipe_args(
        [DataArguments, TokenizerArguments, PrepareOutputArguments], args
    )
    if not tok_args.tokenizer_name_or_path:
        raise ValueError(
            "prepare_data needs tokenizer_name_or_path (train one with recipes/train_tokenizer.py)"
        )
    tokenizer = load_tokenizer(tok_args.tokenizer_name_or_path, tok_args.model_max_length)
    dsd, report = prepare_dataset(data_args, tokenizer)
    if data_args.streaming:  # write the stream to Arrow, one batch at a time
        dsd = DatasetDict(
            {
                k: Dataset.from_generator(_rows, features=FEATURES, gen_kwargs={"ds": v})
                for k, v in dsd.items()
            }
        )
    if len(dsd["train"]) == 0:
        raise ValueError(
            f"{data_args.dataset_name}: no training blocks of {data_args.block_size} tokens; use more text"
        )
    block_size = resolve_block_size(data_args.block_size, tokenizer)
    meta = {
        "block_size": block_size,
        "stride": data_args.stride or block_size,
        "tokenizer": tok_args.tokenizer_name_or_path,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "blocks": {k: len(v) for k, v in dsd.items()},
        "data_args": asdict(data_args),
        "cleaning": [asdict(s) for s in report],
    }
    path = save_packed_dataset(dsd, out_args.output_dir, meta)
    logger.info("saved %s to %s", meta["blocks"], path)
    return dsd


def _rows(ds):
    yield from ds


if __name__ == "__main__":
    main()
