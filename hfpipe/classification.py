"""Text classification on a GPT: labelled data, balancing, splits, tokenization, model and training strategy.

The book's spam classifier (ch. 6) as thin wrappers over datasets / transformers / peft:

    ds = load_labeled_dataset("sms.tsv", column_names=["label", "text"])
    ds, id2label = encode_labels(ds, ["ham", "spam"])
    splits = split_dataset(balance_classes(ds, seed=123), 0.7, 0.1, seed=123)   # 1,045 / 149 / 300
    splits = tokenize_splits(splits, tokenizer, max_length=128)
    model = prepare_model(load_classifier("ckpt", id2label, tokenizer.pad_token_id), "last_blocks", 1)
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict

from .convert import load_gpt
from .data.sources import file_suffix, load_raw_dataset, resolve_files
from .lora import LoraArguments, apply_lora, log_parameters

logger = logging.getLogger(__name__)

STRATEGIES = ("last_blocks", "full", "lora")
PADDINGS = ("longest", "max_length")


def load_labeled_dataset(
    source: str,
    text_column: str = "text",
    label_column: str = "label",
    column_names: list[str] | None = None,
    split: str = "train",
    config_name: str | None = None,
) -> Dataset:
    """Load a Hub id or local .jsonl/.csv/.tsv/.parquet file, dir or glob as a ``text`` + ``label`` dataset.

    ``column_names`` names the columns of a csv/tsv without header (the SMS Spam Collection: ``label text``).
    """
    files = resolve_files(str(source)) if source else None
    if files and any(file_suffix(f) in (".txt", ".text", ".md") for f in files):
        raise ValueError(
            f"{source!r}: a labelled dataset needs .jsonl/.json/.csv/.tsv/.parquet files, not text"
        )
    ds = load_raw_dataset(source, split=split, config_name=config_name, column_names=column_names)
    for role, col in (("text_column", text_column), ("label_column", label_column)):
        if col not in ds.column_names:
            hint = " (or column_names for a csv/tsv without header)" if files else ""
            raise ValueError(
                f"{source!r} has no column {col!r}; its columns are {ds.column_names}. Set {role}{hint}"
            )
    ds = ds.select_columns([text_column, label_column])
    if text_column != "text":
        ds = ds.rename_column(text_column, "text")
    if label_column != "label":
        ds = ds.rename_column(label_column, "label")
    n = len(ds)
    ds = ds.filter(
        lambda t: [isinstance(x, str) and x.strip() != "" for x in t], input_columns="text", batched=True
    )
    if len(ds) < n:
        logger.warning("dropped %d of %d rows with an empty or missing text", n - len(ds), n)
    if len(ds) == 0:
        raise ValueError(f"{source!r}: no rows with text; check text_column and the file")
    return ds


def encode_labels(ds: Dataset, class_names: list[str] | None = None) -> tuple[Dataset, dict[int, str]]:
    """Map the ``label`` column to integer ``labels`` (0..K-1, in ``class_names`` order); return ``id2label``.

    Without ``class_names`` the classes are the sorted distinct labels (or a ``ClassLabel``'s names).
    A label outside ``class_names`` is an error that lists the offending values.
    """
    feature = ds.features["label"]
    values = ds["label"]
    if isinstance(feature, ClassLabel):
        values = [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
    if class_names is None:
        distinct = {v for v in values if v is not None}
        class_names = [str(v) for v in sorted(distinct, key=lambda v: (not isinstance(v, (int, float)), v))]
    class_names = [str(c) for c in class_names]
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names has duplicates: {class_names}")
    if len(class_names) < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {class_names}")
    label2id = {name: i for i, name in enumerate(class_names)}
    ids = [label2id.get(str(v)) if v is not None else None for v in values]
    bad = Counter(str(v) for v, i in zip(values, ids) if i is None)
    if bad:
        shown = ", ".join(f"{v!r} ({n}x)" for v, n in bad.most_common(5))
        raise ValueError(
            f"{sum(bad.values())} of {len(values)} labels are outside the label set {class_names}: {shown}; "
            "fix the data or set class_names"
        )
    ds = ds.remove_columns("label").add_column("labels", ids)
    return ds, dict(enumerate(class_names))


def _check_classes(ds: Dataset, what: str, id2label: dict[int, str] | None = None) -> None:
    counts = Counter(ds["labels"])
    if len(counts) < 2:
        only = ", ".join(str((id2label or {}).get(k, k)) for k in counts) or "none"
        raise ValueError(
            f"only one class left in {what} ({only}; {len(ds)} examples): a classifier needs at least two. "
            "Use more data, a different split, or disable balancing"
        )


def balance_classes(ds: Dataset, seed: int = 123) -> Dataset:
    """Down-sample every class to the size of the smallest one (the book's 747 ham + 747 spam), seeded."""
    _check_classes(ds, "the data before balancing")
    labels = np.asarray(ds["labels"])
    counts = Counter(labels.tolist())
    n_min = min(counts.values())
    rng = np.random.default_rng(seed)
    keep = np.sort(
        np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:n_min] for c in sorted(counts)])
    )
    logger.info("balanced %s -> %d per class (%d examples)", dict(sorted(counts.items())), n_min, len(keep))
    return ds.select(keep)


def split_dataset(
    ds: Dataset, train_size: float = 0.7, validation_size: float = 0.1, seed: int = 123, id2label=None
) -> DatasetDict:
    """Shuffle (seeded) and cut into train / validation / test; test gets the rest (the book: 70/10/20).

    Each non-empty split must hold at least two classes.
    """
    if not (0 < train_size < 1 and 0 <= validation_size < 1 and train_size + validation_size < 1):
        raise ValueError(
            f"train_size ({train_size}) and validation_size ({validation_size}) must be fractions leaving a "
            "non-empty test split"
        )
    ds = ds.shuffle(seed=seed).flatten_indices()
    n_train, n_val = int(len(ds) * train_size), int(len(ds) * validation_size)
    splits = DatasetDict(
        train=ds.select(range(n_train)),
        validation=ds.select(range(n_train, n_train + n_val)),
        test=ds.select(range(n_train + n_val, len(ds))),
    )
    for name, part in splits.items():
        if len(part) or name != "validation":
            _check_classes(part, f"the {name} split", id2label)
    return splits


def tokenize_splits(
    splits: DatasetDict, tokenizer, max_length: int, padding: str = "longest"
) -> tuple[DatasetDict, dict[str, int]]:
    """Tokenize ``text``, truncating past ``max_length`` tokens (logged, counted per split).

    ``padding="longest"`` leaves padding to the collator (each batch to its longest example);
    ``"max_length"`` pads every example to ``max_length`` here. Returns the splits and the truncation counts.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token (e.g. to its eos token)")

    def encode(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]
        enc = {"input_ids": [x[:max_length] for x in ids], "n_tokens": [len(x) for x in ids]}
        enc["attention_mask"] = [[1] * len(x) for x in enc["input_ids"]]
        if padding == "max_length":
            padded = tokenizer.pad(
                {k: enc[k] for k in ("input_ids", "attention_mask")},
                padding="max_length",
                max_length=max_length,
            )
            enc.update(padded)
        return enc

    out, truncated = DatasetDict(), {}
    for name, part in splits.items():
        if not len(part):  # e.g. no validation split
            out[name], truncated[name] = part, 0
            continue
        part = part.map(encode, batched=True, remove_columns=["text"], desc=f"tokenizing {name}")
        n_tokens = np.asarray(part["n_tokens"], dtype=np.int64)
        truncated[name] = int((n_tokens > max_length).sum())
        if truncated[name]:
            logger.warning(
                "%d of %d %s texts are longer than max_length=%d tokens (longest: %d) and were truncated to it",
                truncated[name], len(part), name, max_length, n_tokens.max(),
            )  # fmt: skip
        out[name] = part.remove_columns("n_tokens")
    return out, truncated


def _check_causal_checkpoint(name_or_path: str) -> None:
    config_file = Path(name_or_path) / "config.json"
    if not config_file.is_file():
        return  # a Hub id, or no config at all: load_gpt gives the error
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError:
        return
    archs = config.get("architectures") or []
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise ValueError(
            f"{name_or_path} holds a {'/'.join(archs)} (model_type {config.get('model_type')!r}), not a causal LM; "
            "fine-tuning starts from a causal hfpipe GPT or GPT-2 checkpoint (pretrained or converted)"
        )


def load_classifier(name_or_path: str, id2label: dict[int, str], pad_token_id: int | None = None, **kwargs):
    """Load a causal hfpipe GPT or GPT-2 checkpoint as ``GPTForSequenceClassification`` with a new head."""
    _check_causal_checkpoint(name_or_path)
    id2label = {int(k): str(v) for k, v in id2label.items()}
    return load_gpt(
        name_or_path,
        task="classification",
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        pad_token_id=pad_token_id,
        **kwargs,
    )


def prepare_model(model, strategy: str = "last_blocks", trainable_blocks: int = 1, lora_args=None):
    """Choose what trains: ``last_blocks`` (last N blocks + final norm + head, the book), ``full``, or ``lora``.

    ``lora`` returns a peft ``PeftModel`` (task SEQ_CLS: the ``score`` head trains in full and is saved with
    the adapter). Logs trainable and total parameters.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "lora":
        return apply_lora(model, lora_args or LoraArguments(), "SEQ_CLS")
    n_layers = len(model.model.blocks)
    if strategy == "full":
        model.requires_grad_(True)
    else:
        if not 0 <= trainable_blocks <= n_layers:
            raise ValueError(
                f"trainable_blocks must be in [0, {n_layers}] for this model, got {trainable_blocks}"
            )
        model.requires_grad_(False)
        for module in [
            *model.model.blocks[n_layers - trainable_blocks :],
            model.model.final_norm,
            model.score,
        ]:
            module.requires_grad_(True)
    log_parameters(model, prefix=f"{strategy}: ")
    return model


__all__ = [
    "PADDINGS",
    "STRATEGIES",
    "balance_classes",
    "encode_labels",
    "load_classifier",
    "load_labeled_dataset",
    "prepare_model",
    "split_dataset",
    "tokenize_splits",
]
