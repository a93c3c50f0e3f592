"""Clean, split, tokenize and pack a corpus once into token shards; training runs then load it with
packed_dataset_path (memory-mapped, 2 bytes per token when the vocabulary fits uint16).

    python recipes/prepare_data.py --config recipes/configs/prepare_clm.yaml \\
        --dataset_name corpus.txt --tokenizer_name_or_path out/tokenizer --output_dir out/packed

Settings: trl's ScriptArguments (dataset_name, dataset_config, dataset_train_split, dataset_streaming),
DataArguments (reading, cleaning, split, packing), TokenizerArguments and output_dir. Every per-document
step runs on the cores available (preprocessing_num_workers overrides); the report gives each step's rates.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from trl import ScriptArguments

from hfpipe.data import DataArguments, load_clean_split, load_packed_dataset, save_token_shards
from hfpipe.loading import load_tokenizer
from hfpipe.recipe_args import parse_recipe_args, setup_logging
from hfpipe.tokenization import TokenizerArguments

logger = logging.getLogger("hfpipe.prepare_data")


@dataclass
class PrepareOutputArguments:
    output_dir: str = field(
        default="out/packed", metadata={"help": "Directory the token shards are saved to."}
    )


ARGUMENTS = [ScriptArguments, DataArguments, TokenizerArguments, PrepareOutputArguments]


def main(args: list[str] | None = None):
    """Pack ``dataset_name`` with the tokenizer ``tokenizer_name_or_path`` into token shards in ``output_dir``;
    returns them as ``{split: TokenShardDataset}``."""
    setup_logging()
    script_args, data_args, tok_args, out_args = parse_recipe_args(ARGUMENTS, args)
    if not tok_args.tokenizer_name_or_path:
        raise ValueError(
            "prepare_data needs tokenizer_name_or_path (train one with recipes/train_tokenizer.py)"
        )
    tokenizer = load_tokenizer(tok_args.tokenizer_name_or_path, tok_args.model_max_length)
    corpus, report = load_clean_split(script_args, data_args)
    meta = {
        "tokenizer": tok_args.tokenizer_name_or_path,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "script_args": asdict(script_args),
        "data_args": asdict(data_args),
    }
    out = save_token_shards(corpus, tokenizer, out_args.output_dir, data_args, meta,
                            source=script_args.dataset_name, report=report)  # fmt: skip
    return load_packed_dataset(out, verify_checksums=False)  # just written
