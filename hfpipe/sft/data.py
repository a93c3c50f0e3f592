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

from datasets import Dataset
from trl.chat_template_utils import has_generation_markers

from hfpipe.data.args import SplitArguments
from hfpipe.data.sources import load_raw_dataset
from hfpipe.loading import model_context_length
from hfpipe.tokenization import CHAT_TEMPLATE

from .formats import ALPACA_CHAT_TEMPLATE, FORMAT_COLUMNS, FORMATS, detect_format, normalize_records

logger = logging.getLogger(__name__)
IGNORE_INDEX = -100


@dataclass
class InstructionSplitArguments(SplitArguments):
    """``SplitArguments`` with the book's split of instruction and preference data: 85 % train, 10 % test,
    5 % validation, in file order (935 / 110 / 55 of its 1,100 records)."""

    validation_size: float = field(default=0.05, metadata={"help": "share held out for validation"})
    test_size: float = field(default=0.10, metadata={"help": "share held out for test answers"})
    split_seed: int | None = field(
        default=None,
        metadata={"help": "shuffle with this seed before splitting; null keeps file order (the book)"},
    )


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
        default=None, metadata={"help": "test prompts answered after training (null: all, 0: none)"}
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


def load_sft_records(
    dataset_name: str, dataset_format: str = "auto", dataset_config: str | None = None, split: str = "train"
) -> tuple[list[dict], str, Counter]:
    """Load ``dataset_name`` (json/jsonl/parquet/csv file, directory, glob or Hub id) and normalise its records.

    Returns (records, the format used, Counter of dropped records by reason).
    """
    if not dataset_name:
        raise ValueError("no dataset given: set dataset_name to a .json/.jsonl/.parquet file or a Hub id")
    ds = load_raw_dataset(dataset_name, split=split, config_name=dataset_config)
    fmt = detect_format(ds.column_names) if dataset_format == "auto" else dataset_format
    needed = {"alpaca": "alpaca", "alpaca_chat": "alpaca"}.get(fmt, fmt)
    if fmt != "auto" and needed not in _formats_of(ds.column_names):
        raise ValueError(
            f"{dataset_name}: dataset_format {fmt} needs the columns {FORMAT_COLUMNS[needed]}, but the data has "
            f"{ds.column_names}; fix dataset_format (auto detects it) or the column names"
        )
    records, dropped = normalize_records(ds, fmt)
    if not records:
        reasons = ", ".join(f"{n} {r}" for r, n in dropped.items()) or "no records"
        raise ValueError(
            f"{dataset_name}: no usable {fmt} record ({reasons}); check the data or dataset_format"
        )
    if dropped:
        logger.warning("%s: dropped %d records (%s)", dataset_name, sum(dropped.values()), dict(dropped))
    return records, fmt, dropped


def _formats_of(columns) -> set[str]:
    cols = set(columns)
    found = {"alpaca"} if {"instruction", "output"} <= cols else set()
    found |= {"messages"} if cols & {"messages", "conversations"} else set()
    found |= {"prompt_completion"} if {"prompt", "completion"} <= cols else set()
    return found | ({"text"} if "text" in cols else set())


def split_records(
    records: list, test_size: float = 0.10, validation_size: float = 0.05, seed: int | None = None
) -> dict[str, list]:
    """train/test/validation as the book does (85/10/5, sizes rounded down, validation gets the rest)."""
    if seed is not None:
        records = Dataset.from_list(records).shuffle(seed=seed).to_list()
    n = len(records)
    n_train, n_test = int(n * (1 - test_size - validation_size) + 1e-9), int(n * test_size + 1e-9)
    if n_train == 0:
        raise ValueError(f"{n} records leave none for training; add data or lower test_size/validation_size")
    return {
        "train": records[:n_train],
        "test": records[n_train : n_train + n_test],
        "validation": records[n_train + n_test :],
    }


def is_conversational(record: dict) -> bool:
    return "messages" in record or isinstance(record.get("prompt"), list)


def prepare_tokenizer(tokenizer, fmt: str, eos_token: str | None = None) -> None:
    """Give ``tokenizer`` a distinct pad token and the chat template this format trains with (in place).

    The template stays on the tokenizer saved with the model, so inference renders what training saw.
    """
    if eos_token is not None:
        if eos_token not in tokenizer.get_vocab():
            raise ValueError(
                f"eos_token {eos_token!r} is not in the tokenizer's vocabulary; use one of its tokens"
            )
        tokenizer.eos_token = eos_token
    if tokenizer.eos_token is None:
        raise ValueError(
            "the tokenizer has no eos token, so the model could never learn to stop; set eos_token"
        )
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        logger.warning(
            "the tokenizer's pad token is %s: adding a distinct '<|pad|>' so that padding is masked but eos is "
            "trained (the model's embeddings grow by one row)",
            "missing" if tokenizer.pad_token is None else f"the eos token {tokenizer.eos_token!r}",
        )
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    if fmt == "alpaca":
        tokenizer.chat_template = ALPACA_CHAT_TEMPLATE
    elif not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    elif fmt in ("messages", "alpaca_chat", "prompt_completion") and not has_generation_markers(
        tokenizer.chat_template
    ):
        from trl.chat_template_utils import get_training_chat_template

        try:
            patched = get_training_chat_template(tokenizer)
        except ValueError as err:
            raise ValueError(
                f"the tokenizer's chat template has no {{% generation %}} marks, so assistant turns cannot be told "
                f"apart ({err}); give a template with them in chat_template_path"
            ) from None
        if patched:
            tokenizer.chat_template = patched


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
    return Dataset.from_list(rows), stats


def prepare_data(script_args, training_args, sft_args, tokenizer, context: int | None):
    """Records -> splits -> tokenized train/validation; returns (format, splits, tokenized, stats)."""
    records, fmt, dropped = load_sft_records(
        script_args.dataset_name,
        sft_args.dataset_format,
        script_args.dataset_config,
        script_args.dataset_train_split,
    )
    prepare_tokenizer(tokenizer, fmt, training_args.eos_token)
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


def resolve_max_length(max_length: int | None, context: int | None) -> int | None:
    """``max_length`` capped at the model's context length (with a log line when it is cut)."""
    if context is None:
        return max_length
    if max_length is None or max_length > context:
        logger.info("max_length %s exceeds the model's context (%d): using %d", max_length, context, context)
        return context
    return max_length


__all__ = [
    "IGNORE_INDEX",
    "SFTArguments",
    "SFTDataStats",
    "is_conversational",
    "load_sft_records",
    "model_context_length",
    "prepare_data",
    "prepare_tokenizer",
    "resolve_max_length",
    "split_records",
    "tokenize_record",
    "tokenize_records",
]
