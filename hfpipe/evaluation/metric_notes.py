"""What each evaluation figure is: its name for people, its unit, its item count and one line on what it measures.

Tables and charts show the figures that carry information; the rest of a results file (counts, the constant
chance level, figures that are another transform of one already shown) stay in ``results.json``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricNote:
    """How a figure is shown: its label, unit, which way is better and what it measures (``{text}``, ``{n}``)."""

    label: str
    unit: str
    higher_is_better: bool
    what: str


NOTES = {
    "perplexity": MetricNote(
        "perplexity",
        "per token",
        False,
        "exp of the mean next-token loss over {n} of {text}, with a sliding window: how surprised the model "
        "is by the text",
    ),
    "bits_per_byte": MetricNote(
        "bits per byte",
        "bits per UTF-8 byte",
        False,
        "the same loss on the same text per byte of text: comparable across tokenizers",
    ),
    "hfpipe_bpb/bits_per_byte": MetricNote(
        "lm-eval bits per byte",
        "bits per UTF-8 byte",
        False,
        "lm-eval's own loglikelihood_rolling over hfpipe's local text ({n}): a check on hfpipe's figure, equal "
        "to it when each paragraph fits in the context and the evaluation text is that local text",
    ),
    "hfpipe_mc/acc": MetricNote(
        "cloze accuracy",
        "share of items",
        True,
        "sentences of held-out docstrings cut before their last word ({n}), 4 candidate words of the same kind "
        "and frequency (chance {chance:.0%}): the share where the right word is the most likely; only the "
        "context decides",
    ),
    "hfpipe_mc/acc_norm": MetricNote(
        "cloze accuracy per byte",
        "share of items",
        True,
        "the same items ({n}), each word's log-likelihood divided by its length in bytes",
    ),
    "judge/mean": MetricNote(
        "judge score", "0-100", True, "an LLM judge's mean score of the SFT test answers ({n})"
    ),
}
# Present in results.json but not shown: counts, the constant chance, and transforms of a figure shown.
HIDDEN = {
    "loss", "eval_tokens", "eval_documents", "skipped_documents", "judge/scored", "judge/unparsable",
    "hfpipe_mc/chance", "hfpipe_bpb/word_perplexity", "hfpipe_bpb/byte_perplexity",
}  # fmt: skip


# Charted only when the figure they restate is absent: the same text's loss per byte instead of per token.
RESTATES = {"bits_per_byte": "perplexity", "hfpipe_bpb/bits_per_byte": "perplexity"}
# Drawn in another figure's panel: the same items scored another way.
SAME_PANEL = {"hfpipe_mc/acc_norm": "hfpipe_mc/acc"}


def chart_panels(columns: list[str]) -> list[list[str]]:
    """The panels of a chart: each a list of figures drawn together; restated and constant figures left out."""
    keep = [c for c in shown(columns) if RESTATES.get(c) not in columns]
    panels = {c: [c] for c in keep if SAME_PANEL.get(c) not in keep}
    for c in keep:
        if SAME_PANEL.get(c) in panels:
            panels[SAME_PANEL[c]].append(c)
    return list(panels.values())


def shown(columns: list[str]) -> list[str]:
    """The columns worth a table column or a chart panel: the described ones first, then unknown ones."""
    known = [c for c in NOTES if c in columns]
    return known + [c for c in columns if c not in NOTES and c not in HIDDEN]


def label(column: str) -> str:
    """A column's name for people (its raw key when hfpipe does not know it)."""
    return NOTES[column].label if column in NOTES else column


def item_count(column: str, metrics: dict) -> str:
    """How many items or tokens a figure was computed on, in words (empty when unknown)."""
    if column in ("perplexity", "bits_per_byte") and "eval_tokens" in metrics:
        return f"{int(metrics.get('eval_documents', 0)):,} documents, {int(metrics['eval_tokens']):,} tokens"
    task = column.split("/")[0]
    if task in ("hfpipe_mc", "hfpipe_bpb"):
        from .tasks.local_data import task_size

        return f"{task_size(task)} {'items' if task == 'hfpipe_mc' else 'paragraphs'}"
    if column.startswith("judge/") and "judge/scored" in metrics:
        return f"{int(metrics['judge/scored'])} answers"
    return ""


def describe(column: str, metrics: dict, text: str | None = None) -> str:
    """Unit, which way is better, and one line on what the figure measures on which text with how many items."""
    note = NOTES.get(column)
    if note is None:
        return "(as its stage reports it)"
    what = note.what.format(text=text or "the evaluation text", n=item_count(column, metrics) or "?",
                            chance=metrics.get("hfpipe_mc/chance", 0.25))  # fmt: skip
    return f"({note.unit}; {'higher' if note.higher_is_better else 'lower'} is better): {what}"
