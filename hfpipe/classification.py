"""Text classification on a GPT: labelled data, balancing, splits, tokenization, model and training strategy.

The book's spam classifier (ch. 6) as thin wrappers over datasets / transformers / peft:

    ds = load_labeled_dataset("sms.tsv", column_names=["label", "text"])
    ds, id2label = encode_labels(ds, ["ham", "spam"])
    splits = split_dataset(balance_classes(ds, seed=123), 0.1, 0.2, seed=123)   # 1,045 / 149 / 300
    splits = tokenize_splits(splits, tokenizer, max_length=128)
    model = prepare_model(load_classifier("ckpt", id2label, tokenizer.pad_token_id), "last_blocks", 1)
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict
from trl import ModelConfig

from .data.args import DataArguments
from .data.sources import file_suffix, load_raw_dataset, resolve_files
from .loading import is_adapter, load_model, read_config
from .lora import apply_lora, count_parameters, log_parameters, merge_lora

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
    ds: Dataset, validation_size: float = 0.1, test_size: float = 0.2, seed: int | None = 123, id2label=None
) -> DatasetDict:
    """Shuffle (seeded; ``seed=None`` keeps the order) and cut into train / validation / test; train gets the
    rest (the book: 70/10/20). Each non-empty split must hold at least two classes."""
    if not (0 <= validation_size < 1 and 0 < test_size < 1 and validation_size + test_size < 1):
        raise ValueError(
            f"validation_size ({validation_size}) and test_size ({test_size}) must be shares leaving a "
            "non-empty test and training split"
        )
    if seed is not None:
        ds = ds.shuffle(seed=seed).flatten_indices()
    # the book's arithmetic: train and validation rounded down, test the rest (1,494 -> 1,045 / 149 / 300)
    n_train = int(len(ds) * (1 - validation_size - test_size) + 1e-9)
    n_val = int(len(ds) * validation_size)
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


def load_classifier(name_or_path: str, id2label: dict[int, str], pad_token_id: int | None = None, **kwargs):
    """A causal checkpoint (hfpipe, GPT-2 or any causal LM) as a sequence classifier with a new ``score`` head."""
    config = read_config(name_or_path) if not is_adapter(name_or_path) else {}
    archs = config.get("architectures") or []
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise ValueError(
            f"{name_or_path} holds a {'/'.join(archs)} (model_type {config.get('model_type')!r}), not a causal LM; "
            "fine-tuning starts from a causal hfpipe GPT or GPT-2 checkpoint (pretrained or converted)"
        )
    id2label = {int(k): str(v) for k, v in id2label.items()}
    extra = {"pad_token_id": pad_token_id} if pad_token_id is not None else {}
    return load_model(
        name_or_path,
        task="sequence-classification",
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        **extra,
        **kwargs,
    )


def prepare_model(model, strategy: str = "last_blocks", trainable_blocks: int = 1, model_args=None):
    """Choose what trains: ``last_blocks`` (last N blocks + final norm + head, the book), ``full``, or ``lora``.

    ``lora`` returns a peft ``PeftModel`` (task SEQ_CLS: the ``score`` head trains in full and is saved with
    the adapter). Logs trainable and total parameters.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "lora":
        return apply_lora(model, model_args or ModelConfig(), "SEQ_CLS")
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


@dataclass
class ClassifierDataArguments(DataArguments):
    """``DataArguments`` with the book's split of labelled data: 70 / 10 / 20, seed 123."""

    validation_size: float = field(default=0.1, metadata={"help": "share held out for validation"})
    test_size: float = field(default=0.2, metadata={"help": "share held out for the test metrics"})
    split_seed: int | None = field(default=123, metadata={"help": "seed of balancing and splitting"})


@dataclass
class ClassifierArguments:
    """What trl's ScriptArguments/ModelConfig and hfpipe's DataArguments do not cover: labels, splits, strategy."""

    label_column: str = field(default="label", metadata={"help": "column holding the label"})
    class_names: list[str] | None = field(
        default=None, metadata={"help": "the label set, in id order; default: the sorted distinct labels"}
    )
    balance: bool = field(default=False, metadata={"help": "down-sample every class to the smallest one"})
    max_length: int | None = field(
        default=None,
        metadata={"help": "truncate texts to this many tokens (default and maximum: the context)"},
    )
    padding: str = field(default="longest", metadata={"help": "longest (per batch) or max_length (fixed)"})
    strategy: str = field(default="last_blocks", metadata={"help": "last_blocks, full or lora (= use_peft)"})
    trainable_blocks: int = field(default=1, metadata={"help": "last_blocks: how many final blocks train"})
    drop_rate: float | None = field(default=None, metadata={"help": "override the checkpoint's dropout"})


def build_splits(script_args, data_args, cfg: ClassifierArguments):
    """Load, label, optionally balance and split the data; returns (splits, id2label)."""
    ds = load_labeled_dataset(
        script_args.dataset_name, data_args.text_column, cfg.label_column, data_args.column_names,
        script_args.dataset_train_split, script_args.dataset_config,
    )  # fmt: skip
    ds, id2label = encode_labels(ds, cfg.class_names)
    if cfg.balance:
        ds = balance_classes(ds, data_args.split_seed or 0)
    splits = split_dataset(ds, data_args.validation_size, data_args.test_size, data_args.split_seed, id2label)
    return splits, id2label


def finetune_classifier(script_args, model_args, data_args, cfg: ClassifierArguments, training_args) -> dict:
    """Fine-tune a causal checkpoint as a classifier; save it (merged, for LoRA; the adapter in ``adapter/``) to
    ``output_dir`` with ``results.json``. Returns the result record (metrics per split, confusion matrices, ...).
    """
    from transformers import DataCollatorWithPadding, Trainer

    from .loading import load_tokenizer
    from .metrics import classification_metrics, confusion_matrix
    from .training.run import finish_run, fit_pad_token, prepare_output_dir, save_final, train_and_evaluate

    if not model_args.model_name_or_path or not script_args.dataset_name:
        raise ValueError("set model_name_or_path (a causal checkpoint) and dataset_name (labelled data)")
    strategy = "lora" if model_args.use_peft else cfg.strategy
    splits, id2label = build_splits(script_args, data_args, cfg)
    extra = {"drop_rate": cfg.drop_rate} if cfg.drop_rate is not None else {}
    model = load_classifier(model_args.model_name_or_path, id2label, **extra)
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    fit_pad_token(model, tokenizer)  # the classifier reads the last non-padding token: pad must not be eos
    context = model.config.max_position_embeddings
    if cfg.max_length is not None and not 0 < cfg.max_length <= context:
        raise ValueError(f"max_length must be in [1, context_length={context}], got {cfg.max_length}")
    max_length = cfg.max_length or context
    tokenizer.model_max_length = context
    splits, truncated = tokenize_splits(splits, tokenizer, max_length, cfg.padding)
    model = prepare_model(model, strategy, cfg.trainable_blocks, model_args)
    trainable, total = count_parameters(model)
    prepare_output_dir(training_args)  # after every input check: a bad run leaves no directory behind

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"] if len(splits["validation"]) else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=classification_metrics(),
    )
    metrics = train_and_evaluate(trainer)
    lora_settings = {k: v for k, v in vars(model_args).items() if k.startswith("lora_")}
    result = {
        "model_name_or_path": model_args.model_name_or_path,
        "strategy": strategy,
        "id2label": id2label,
        "trainable_params": trainable,
        "total_params": total,
        "train_runtime": metrics["train_runtime"],
        "split_sizes": {name: len(part) for name, part in splits.items()},
        "truncated": truncated,
        "max_length": max_length,
        "config": {**asdict(cfg), **({"lora": lora_settings} if strategy == "lora" else {})},
    }
    for split in ("validation", "test"):
        if not len(splits[split]):
            continue
        out = trainer.predict(splits[split], metric_key_prefix=split)
        m = {k.removeprefix(f"{split}_"): v for k, v in out.metrics.items()}
        m["n"] = len(splits[split])
        m["confusion_matrix"] = confusion_matrix(out.label_ids, out.predictions.argmax(-1), len(id2label))
        result[split] = m
        metrics.update(
            {f"{split}_{k}": v for k, v in m.items() if k in ("accuracy", "precision", "recall", "f1")}
        )

    final = None
    if strategy == "lora":
        if trainer.is_world_process_zero():
            save_final(trainer.model, tokenizer, Path(training_args.output_dir) / "adapter")
        final = merge_lora(copy.deepcopy(trainer.model))  # a plain classifier: pipeline() loads it as it is
    finish_run(trainer, tokenizer, "classifier", metrics, model=final, **{k: v for k, v in result.items() if k != "model_name_or_path"},
               card={"dataset": script_args.dataset_name, "prompt": "You won a free prize! Reply now to claim"})  # fmt: skip
    return result


__all__ = [
    "ClassifierArguments",
    "ClassifierDataArguments",
    "finetune_classifier",
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
