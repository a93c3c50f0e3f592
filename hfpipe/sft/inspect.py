"""The loss-mask viewer: examples exactly as the trainer sees them, trained tokens highlighted.

Trained tokens (label != -100) are green on a terminal and wrapped in [[ ]] otherwise; special tokens
(eos, pad) are shown as their text, so an untrained eos is as visible as a trained prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..loading import model_context_length
from .data import IGNORE_INDEX, SFTDataStats, prepare_data

GREEN, RESET = "\033[42;30m", "\033[0m"


@dataclass
class InspectArguments:
    """What the loss-mask viewer shows."""

    num_examples: int = field(default=3, metadata={"help": "how many examples to render"})
    split: str = field(default="train", metadata={"help": "train or validation"})
    color: str = field(default="auto", metadata={"help": "auto (on a terminal), always or never"})


def render_example(input_ids: list[int], labels: list[int], tokenizer, color: bool = False) -> str:
    """The example's text with its trained spans highlighted (decoded span by span, so bytes stay whole)."""
    spans, start = [], 0
    for i in range(1, len(input_ids) + 1):
        if i == len(input_ids) or (labels[i] != IGNORE_INDEX) != (labels[start] != IGNORE_INDEX):
            text = tokenizer.decode(input_ids[start:i], skip_special_tokens=False)
            if labels[start] != IGNORE_INDEX:
                text = f"{GREEN}{text}{RESET}" if color else f"[[{text}]]"
            spans.append(text)
            start = i
    return "".join(spans)


def mask_report(dataset, stats: SFTDataStats, tokenizer, num_examples: int = 3, color: bool = False) -> str:
    """Counts (trained share, truncated, dropped) and the first ``num_examples`` rendered examples."""
    legend = "green" if color else "[[ ]]"
    lines = [stats.summary(), f"trained tokens are shown in {legend}; the first token is never a target", ""]
    for i in range(min(num_examples, len(dataset))):
        row = dataset[i]
        trained = sum(label != IGNORE_INDEX for label in row["labels"])
        lines.append(f"--- example {i}: {len(row['input_ids'])} tokens, {trained} trained ---")
        lines.append(render_example(row["input_ids"], row["labels"], tokenizer, color))
        lines.append("")
    return "\n".join(lines)


def inspect_sft_data(script_args, training_args, model_args, sft_args, inspect_args: InspectArguments) -> str:
    """The report of ``mask_report`` for the data and tokenizer a recipes/sft.py config would train on."""
    import sys

    from hfpipe.loading import is_adapter, load_tokenizer, read_config
    from hfpipe.training.run import fit_pad_token, set_eos_token

    name = model_args.model_name_or_path
    if not name:
        raise ValueError("set model_name_or_path: its tokenizer and context length decide what is trained")
    if is_adapter(name):
        from peft import PeftConfig

        name = PeftConfig.from_pretrained(name).base_model_name_or_path
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    set_eos_token(tokenizer, training_args.eos_token)
    fit_pad_token(None, tokenizer)  # as training will: the same ids
    context = model_context_length(read_config(name))
    fmt, _, tokenized, stats = prepare_data(script_args, training_args, sft_args, tokenizer, context)
    if inspect_args.split not in tokenized:
        raise ValueError(f"split {inspect_args.split!r}: choose one of {sorted(tokenized)}")
    color = inspect_args.color == "always" or (inspect_args.color == "auto" and sys.stdout.isatty())
    head = f"format {fmt}, max_length {training_args.max_length}, split {inspect_args.split}"
    split_stats = stats[inspect_args.split]
    return (
        head
        + "\n"
        + mask_report(tokenized[inspect_args.split], split_stats, tokenizer, inspect_args.num_examples, color)
    )
