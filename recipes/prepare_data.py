"""Clean, split, tokenize and pack a corpus once; training runs then load it with packed_dataset_path.

    python recipes/prepare_data.py --config recipes/configs/prepare_clm.yaml \\
        --dataset_name corpus.txt --tokenizer_name_or_path out/tokenizer --output_dir out/packed

Settings: trl's ScriptArguments (dataset_name, dataset_config, dataset_train_split, dataset_streaming),
DataArguments (reading, cleaning, split, packing), TokenizerArguments and output_dir.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import logging
from dataclasses import asdict, dataclass, field

from trl import ScriptArguments

from hfpipe.data import DataArguments, load_clean_split, pack_corpus, save_packed_dataset
from hfpipe.recipe_args import parse_recipe_args, run_recipe, setup_logging
from hfpipe.tokenization import TokenizerArguments, load_tokenizer

logger = logging.getLogger("hfpipe.prepare_data")


@dataclass
class PrepareOutputArguments:
    output_dir: str = field(
        default="out/packed", metadata={"help": "Directory the packed dataset is saved to."}
    )


ARGUMENTS = [ScriptArguments, DataArguments, TokenizerArguments, PrepareOutputArguments]


def main(args: list[str] | None = None):
    """Pack ``dataset_name`` with the tokenizer ``tokenizer_name_or_path`` into ``output_dir``; returns the blocks."""
    setup_logging()
    script_args, data_args, tok_args, out_args = parse_recipe_args(ARGUMENTS, args)
    if not tok_args.tokenizer_name_or_path:
        raise ValueError(
            "prepare_data needs tokenizer_name_or_path (train one with recipes/train_tokenizer.py)"
        )
    tokenizer = load_tokenizer(tok_args.tokenizer_name_or_path, tok_args.model_max_length)
    corpus, report = load_clean_split(script_args, data_args)
    blocks = pack_corpus(corpus, tokenizer, data_args, source=script_args.dataset_name)
    meta = {
        "tokenizer": tok_args.tokenizer_name_or_path,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "script_args": asdict(script_args),
        "data_args": asdict(data_args),
        "cleaning": [asdict(s) for s in report],
    }
    save_packed_dataset(blocks, out_args.output_dir, meta)
    return blocks


if __name__ == "__main__":
    run_recipe(main)
