"""Instruction data, shared by SFT, the reward model, DPO and RL: formats, the book's split, chat templates.

Formats: the book's Alpaca prompt template, chat messages, prompt/completion and plain text.

Every record is normalised to one of three shapes before tokenization:

    {"prompt": str, "completion": str}                  # plain prompt/completion (Alpaca renders to this)
    {"prompt": [messages], "completion": [messages]}    # conversational prompt/completion
    {"messages": [messages]}                            # multi-turn chat (Alpaca renders to this with alpaca_chat)
    {"text": str}                                       # language modelling: every token trained

Records that cannot be trained (empty response, no assistant turn, roles out of order) are dropped and
counted by reason, never trained as an empty target.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from hfpipe.data.args import SplitArguments

logger = logging.getLogger(__name__)

# The book's (LLMs-from-scratch ch. 7) Alpaca template; "### Input:" only when the input is non-empty.
ALPACA_PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
ALPACA_RESPONSE_HEADER = "\n\n### Response:\n"

# The same template as a chat template, saved with a model trained on Alpaca records: a user message is the
# instruction, so chat.py and pipeline() render exactly the prompts training saw.
ALPACA_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}{{ messages[0]['content'] }}{%- set turns = messages[1:] -%}"
    "{%- else -%}{{ '" + ALPACA_PREAMBLE + "' }}{%- set turns = messages -%}{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}{{ '\\n\\n### Instruction:\\n' + message['content'] }}"
    "{%- if loop.last and add_generation_prompt -%}{{ '\\n\\n### Response:\\n' }}{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}{{ '\\n\\n### Response:\\n' }}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

FORMATS = ("alpaca", "alpaca_chat", "messages", "prompt_completion", "text")
FORMAT_COLUMNS = {
    "alpaca": "instruction, input (optional), output",
    "messages": "messages (a list of {role, content}) or conversations",
    "prompt_completion": "prompt, completion (strings, or lists of messages)",
    "text": "text",
}
ROLES = ("system", "user", "assistant")


def format_alpaca_prompt(record: dict) -> str:
    """The book's prompt for an Alpaca record, ending with the response header the model answers after."""
    text = f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{record['instruction']}"
    if record.get("input"):
        text += f"\n\n### Input:\n{record['input']}"
    return text + ALPACA_RESPONSE_HEADER


def alpaca_to_messages(record: dict) -> list[dict]:
    """An Alpaca record as a user/assistant exchange (the input, if any, follows the instruction)."""
    user = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]


def detect_format(columns: list[str]) -> str:
    """The data format implied by a dataset's column names; a ValueError lists the formats understood."""
    cols = set(columns)
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if "messages" in cols or "conversations" in cols:
        return "messages"
    if {"prompt", "completion"} <= cols:
        return "prompt_completion"
    if "text" in cols:
        return "text"
    understood = "; ".join(f"{name}: {cols_}" for name, cols_ in FORMAT_COLUMNS.items())
    raise ValueError(
        f"no usable columns in {sorted(cols)}: SFT data needs one of these formats ({understood}); "
        "rename the columns, or set dataset_format"
    )


def _message(m: dict) -> dict:
    # ShareGPT's {"from": "human", "value": ...} becomes {"role": "user", "content": ...}
    if "role" not in m and "from" in m:
        role = {"human": "user", "gpt": "assistant"}.get(m["from"], m["from"])
        return {"role": role, "content": m.get("value")}
    return {"role": m.get("role"), "content": m.get("content")}


def check_messages(messages: list[dict], need_assistant: bool = True) -> str | None:
    """Why ``messages`` cannot be trained (a short reason), or None when they can.

    Allowed order: an optional system message first, then user and assistant turns alternating,
    starting with the user.
    """
    if not messages:
        return "empty conversation"
    roles = [m["role"] for m in messages]
    if any(r not in ROLES for r in roles):
        return "unknown role"
    if any(not isinstance(m["content"], str) for m in messages):
        return "message content is not text"
    turns = roles[1:] if roles[0] == "system" else roles
    if any(r == "system" for r in turns) or any(a == b for a, b in zip(turns, turns[1:])):
        return "roles out of order"
    if turns and turns[0] != "user":
        return "roles out of order"
    if need_assistant and "assistant" not in turns:
        return "no assistant turn"
    if any(m["role"] == "assistant" and not m["content"].strip() for m in messages):
        return "empty response"
    return None


def normalize_record(record: dict, fmt: str) -> tuple[dict | None, str | None]:
    """``record`` in its normalised shape for ``fmt`` (see the module docstring), or (None, reason to drop it)."""
    if fmt in ("alpaca", "alpaca_chat"):
        if not isinstance(record.get("instruction"), str) or not record["instruction"].strip():
            return None, "empty instruction"
        if not isinstance(record.get("output"), str) or not record["output"].strip():
            return None, "empty response"
        record = {
            "instruction": record["instruction"],
            "input": record.get("input") or "",
            "output": record["output"],
        }
        source = {"instruction": record["instruction"], "input": record["input"]}  # kept for test answers
        if fmt == "alpaca":
            return {"prompt": format_alpaca_prompt(record), "completion": record["output"], **source}, None
        return {"messages": alpaca_to_messages(record), **source}, None
    if fmt == "messages":
        messages = [_message(m) for m in (record.get("messages") or record.get("conversations") or [])]
        reason = check_messages(messages)
        return (None, reason) if reason else ({"messages": messages}, None)
    if fmt == "prompt_completion":
        prompt, completion = record.get("prompt"), record.get("completion")
        if isinstance(prompt, list) and isinstance(completion, list):
            prompt, completion = [_message(m) for m in prompt], [_message(m) for m in completion]
            reason = check_messages(prompt + completion)
            if reason is None and not any(m["role"] == "assistant" for m in completion):
                reason = "no assistant turn"
            return (None, reason) if reason else ({"prompt": prompt, "completion": completion}, None)
        if not isinstance(prompt, str) or not isinstance(completion, str):
            return None, "prompt/completion not text"
        if not completion.strip():
            return None, "empty response"
        return {"prompt": prompt, "completion": completion}, None
    if fmt == "text":
        text = record.get("text")
        return (
            (None, "empty text") if not isinstance(text, str) or not text.strip() else ({"text": text}, None)
        )
    raise ValueError(f"dataset_format {fmt!r} is not one of auto, {', '.join(FORMATS)}")


def keep_and_count(records, normalize) -> tuple[list[dict], Counter]:
    """Apply ``normalize`` (a record -> ``(record, None)`` or ``(None, why)``) to every record; returns
    (the usable ones, a Counter of drop reasons)."""
    kept, dropped = [], Counter()
    for record in records:
        out, reason = normalize(record)
        if out is None:
            dropped[reason] += 1
        else:
            kept.append(out)
    return kept, dropped


def normalize_records(records, fmt: str) -> tuple[list[dict], Counter]:
    """Normalise every record; returns (the usable ones, a Counter of drop reasons)."""
    return keep_and_count(records, lambda record: normalize_record(record, fmt))


__all__ = [
    "keep_and_count",
    "ALPACA_CHAT_TEMPLATE",
    "ALPACA_PREAMBLE",
    "FORMATS",
    "alpaca_to_messages",
    "check_messages",
    "detect_format",
    "format_alpaca_prompt",
    "normalize_record",
    "normalize_records",
]


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


def split_records(
    records: list, test_size: float = 0.10, validation_size: float = 0.05, seed: int | None = None
) -> dict[str, list]:
    """train/test/validation as the book does (85/10/5, sizes rounded down, validation gets the rest)."""
    if seed is not None:
        from datasets import Dataset

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


def _formats_of(columns) -> set[str]:
    cols = set(columns)
    found = {"alpaca"} if {"instruction", "output"} <= cols else set()
    found |= {"messages"} if cols & {"messages", "conversations"} else set()
    found |= {"prompt_completion"} if {"prompt", "completion"} <= cols else set()
    return found | ({"text"} if "text" in cols else set())


def load_instruction_records(
    dataset_name: str, dataset_format: str = "auto", dataset_config: str | None = None, split: str = "train"
) -> tuple[list[dict], str, Counter]:
    """Load ``dataset_name`` (json/jsonl/parquet/csv file, directory, glob or Hub id) and normalise its records.

    Returns (records, the format used, Counter of dropped records by reason).
    """
    if not dataset_name:
        raise ValueError("no dataset given: set dataset_name to a .json/.jsonl/.parquet file or a Hub id")
    from hfpipe.data.sources import load_raw_dataset  # datasets: only once data loads, not for --help

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


def set_chat_template(tokenizer, fmt: str) -> None:
    """Give ``tokenizer`` the chat template records of format ``fmt`` train with (in place).

    The template stays on the tokenizer saved with the model, so inference renders what training saw: Alpaca
    records get the book's template; chat formats keep the tokenizer's own, with ``{% generation %}`` marks
    added by trl where it has none (they tell assistant tokens apart).
    """
    from trl.chat_template_utils import has_generation_markers

    from hfpipe.tokenization import CHAT_TEMPLATE

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
