"""SFT data: load (any hfpipe data source), normalise, split 85/10/5, tokenize with the response-only mask.

hfpipe tokenizes itself, with the tokenizer's own primitives, and hands ``SFTTrainer`` ``input_ids`` +
``labels`` (trl uses a ``labels`` column as is, and still truncates, packs and collates). That way every
count the recipe reports (truncated, dropped, trained share) is exact, the mask the loss-mask viewer shows
is the one trained, and a plain prompt is tokenized alone, exactly as generation will see it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hfpipe.data.instructions import (
    FORMATS,
    InstructionSplitArguments,
    load_instruction_records,
    set_chat_template,
    split_records,
)

if TYPE_CHECKING:  # datasets and the model loader load with the data, not when --help builds the parser
    from datasets import Dataset

logger = logging.getLogger(__name__)
IGNORE_INDEX = -100


@dataclass
class SFTArguments(InstructionSplitArguments):
    """hfpipe's SFT settings that trl's ScriptArguments/SFTConfig/ModelConfig do not have (and the split)."""

    dataset_format: str = field(
        default="auto",
        metadata={
            "help": f"auto (from the columns), {', '.join(FORMATS)}; alpaca_chat renders Alpaca as chat"
        },
    )
    drop_overlong: bool = field(
        default=False, metadata={"help": "drop examples longer than max_length instead of truncating them"}
    )
    test_answers: int | None = field(
        default=50,
        metadata={"help": "test prompts answered after training, in batches (null: all, 0: none)"},
    )
    answer_max_new_tokens: int = field(default=256, metadata={"help": "cap on each test answer's length"})
    save_merged: bool = field(
        default=False, metadata={"help": "with use_peft: also write the merged model to output_dir/merged"}
    )

    def __post_init__(self):
        if self.dataset_format not in ("auto", *FORMATS):
            raise ValueError(
                f"dataset_format {self.dataset_format!r}: use auto or one of {', '.join(FORMATS)}"
            )
        super().__post_init__()


@dataclass
class SFTDataStats:
    """What data preparation kept, dropped and cut: reported by the recipe and the loss-mask viewer."""

    records: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> records
    truncated: int = 0
    tokens: int = 0
    trained_tokens: int = 0

    @property
    def trained_share(self) -> float:
        return self.trained_tokens / self.tokens if self.tokens else 0.0

    def summary(self) -> str:
        dropped = ", ".join(f"{n} {reason}" for reason, n in self.dropped.most_common()) or "none"
        return (
            f"{self.records} records | dropped: {dropped} | truncated to max_length: {self.truncated} | "
            f"{self.trained_tokens:,} of {self.tokens:,} tokens trained ({100 * self.trained_share:.1f} %)"
        )


def _chat_ids(tokenizer, messages: list[dict], **kwargs) -> dict:
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)


def tokenize_record(record: dict, tokenizer) -> dict:
    """``input_ids`` and ``labels`` (-100 where not trained) of one normalised record.

    Plain prompt/completion: the prompt's tokens, then the completion's, then eos; only the completion and
    eos are trained. Chat: the template's ``{% generation %}`` spans (assistant turns and their eos) are
    trained; for conversational prompt/completion, only those in the completion. Text: every token.
    """
    eos = tokenizer.eos_token_id
    if "text" in record:
        ids = tokenizer(record["text"], add_special_tokens=False)["input_ids"] + [eos]
        return {"input_ids": ids, "labels": list(ids)}
    if "messages" in record or isinstance(record.get("prompt"), list):
        messages = record.get("messages") or record["prompt"] + record["completion"]
        out = _chat_ids(tokenizer, messages, return_assistant_tokens_mask=True)
        ids, mask = out["input_ids"], out["assistant_masks"]
        if "prompt" in record:  # train only the completion's assistant turns
            start = len(_chat_ids(tokenizer, record["prompt"], add_generation_prompt=True)["input_ids"])
            mask = [0] * start + mask[start:]
        if not any(mask):
            raise ValueError(
                "the chat template marked no assistant token: it needs {% generation %} around assistant turns"
            )
        return {"input_ids": ids, "labels": [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]}
    prompt = tokenizer(record["prompt"], add_special_tokens=False)["input_ids"]
    completion = tokenizer(record["completion"], add_special_tokens=False)["input_ids"] + [eos]
    return {"input_ids": prompt + completion, "labels": [IGNORE_INDEX] * len(prompt) + completion}


def tokenize_records(
    records: list[dict], tokenizer, max_length: int | None, drop_overlong: bool = False
) -> tuple[Dataset, SFTDataStats]:
    """Tokenize ``records``; cut (or drop) those longer than ``max_length``; drop those left untrained."""
    stats = SFTDataStats(records=len(records))
    rows = []
    for record in records:
        row = tokenize_record(record, tokenizer)
        if max_length is not None and len(row["input_ids"]) > max_length:
            if drop_overlong:
                stats.dropped["longer than max_length"] += 1
                continue
            stats.truncated += 1
            row = {k: v[:max_length] for k, v in row.items()}
        trained = sum(
            label != IGNORE_INDEX for label in row["labels"][1:]
        )  # the first token is never predicted
        if trained == 0:
            stats.dropped["no trained token left"] += 1
            continue
        stats.tokens += len(row["input_ids"])
        stats.trained_tokens += trained
        rows.append(row)
    if not rows:
        raise ValueError(
            f"no example left to train on ({stats.summary()}); raise max_length or check the data"
        )
    from datasets import Dataset

    return Dataset.from_list(rows), stats


def prepare_data(script_args, training_args, sft_args, tokenizer, context: int | None):
    """Records -> splits -> tokenized train/validation; returns (format, splits, tokenized, stats)."""
    records, fmt, dropped = load_instruction_records(
        script_args.dataset_name,
        sft_args.dataset_format,
        script_args.dataset_config,
        script_args.dataset_train_split,
    )
    set_chat_template(tokenizer, fmt)
    from hfpipe.loading import resolve_max_length

    training_args.max_length = resolve_max_length(training_args.max_length, context)
    splits = split_records(records, sft_args.test_size, sft_args.validation_size, sft_args.split_seed)
    tokenized, stats = {}, {}
    for name in ("train", "validation"):
        if splits[name]:
            tokenized[name], stats[name] = tokenize_records(
                splits[name], tokenizer, training_args.max_length, sft_args.drop_overlong
            )
    stats["train"].dropped.update(dropped)
    return fmt, splits, tokenized, stats


__all__ = [
    "IGNORE_INDEX",
    "SFTArguments",
    "SFTDataStats",
    "prepare_data",
    "tokenize_record",
    "tokenize_records",
]
