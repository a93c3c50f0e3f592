"""Fine-tune a causal GPT checkpoint (hfpipe-pretrained or converted GPT-2) as a text classifier.

    python recipes/finetune_classifier.py --config recipes/configs/classifier_sms_spam.yaml \
        --model_name_or_path my-pretrained-gpt --dataset_name path/to/sms_spam_collection.tsv

Writes to ``output_dir``: the classifier + tokenizer (``pipeline("text-classification", model=output_dir)``
and ``AutoModelForSequenceClassification`` load it; with LoRA it is the merged plain model), with LoRA also
``output_dir/adapter`` (the peft adapter with the ``score`` head), and ``classification_metrics.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed
from transformers.utils import logging as hf_logging

from hfpipe.classification import (
    balance_classes,
    encode_labels,
    load_classifier,
    load_labeled_dataset,
    prepare_model,
    split_dataset,
    tokenize_splits,
)
from hfpipe.convert import save_atomically
from hfpipe.lora import LoraArguments, count_parameters, merge_lora
from hfpipe.metrics import classification_metrics, confusion_matrix
from hfpipe.recipe_args import parse_recipe_args
from hfpipe.tokenization import load_tokenizer

logger = logging.getLogger("finetune_classifier")
METRICS_FILE = "classification_metrics.json"


@dataclass
class ClassifierArguments:
    """Checkpoint, data, splits, tokenization and training strategy."""

    model_name_or_path: str = field(
        metadata={"help": "causal hfpipe GPT or GPT-2 checkpoint (dir or Hub id)"}
    )
    dataset_name: str = field(
        metadata={"help": "Hub id, or local .tsv/.csv/.jsonl/.parquet file, dir or glob"}
    )
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "default: model_name_or_path"})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration"})
    dataset_split: str = field(default="train", metadata={"help": "split read from a Hub dataset"})
    text_column: str = field(default="text", metadata={"help": "column holding the text"})
    label_column: str = field(default="label", metadata={"help": "column holding the label"})
    column_names: list[str] | None = field(
        default=None, metadata={"help": "columns of a csv/tsv without header"}
    )
    class_names: list[str] | None = field(
        default=None, metadata={"help": "the label set, in id order; default: the sorted distinct labels"}
    )
    balance: bool = field(default=False, metadata={"help": "down-sample every class to the smallest one"})
    train_size: float = field(default=0.7, metadata={"help": "fraction of examples for training"})
    validation_size: float = field(
        default=0.1, metadata={"help": "fraction for validation; test gets the rest"}
    )
    split_seed: int = field(default=123, metadata={"help": "seed of balancing and splitting"})
    max_length: int | None = field(
        default=None,
        metadata={"help": "truncate texts to this many tokens (default and maximum: context_length)"},
    )
    padding: str = field(default="longest", metadata={"help": "longest (per batch) or max_length (fixed)"})
    strategy: str = field(default="last_blocks", metadata={"help": "last_blocks, full or lora"})
    trainable_blocks: int = field(default=1, metadata={"help": "last_blocks: how many final blocks train"})
    drop_rate: float | None = field(default=None, metadata={"help": "override the checkpoint's dropout"})


def build_splits(cfg: ClassifierArguments):
    """Load, label, optionally balance and split the data; returns (splits, id2label)."""
    ds = load_labeled_dataset(
        cfg.dataset_name,
        cfg.text_column,
        cfg.label_column,
        cfg.column_names,
        cfg.dataset_split,
        cfg.dataset_config_name,
    )
    ds, id2label = encode_labels(ds, cfg.class_names)
    if cfg.balance:
        ds = balance_classes(ds, cfg.split_seed)
    return split_dataset(ds, cfg.train_size, cfg.validation_size, cfg.split_seed, id2label), id2label


def _summary(result: dict) -> str:
    names = list(result["id2label"].values())
    lines = [
        f"strategy {result['strategy']}: {result['trainable_params']:,} of {result['total_params']:,} parameters "
        f"trained, {result['train_runtime']:.1f} s",
        f"{'split':<11}{'n':>6}{'accuracy':>10}{'precision':>11}{'recall':>8}{'f1':>8}",
    ]
    for split in ("validation", "test"):
        m = result.get(split)
        if m:
            lines.append(
                f"{split:<11}{m['n']:>6}{m['accuracy']:>10.4f}{m['precision']:>11.4f}{m['recall']:>8.4f}{m['f1']:>8.4f}"
            )
    width = max(len(n) for n in names) + 2
    lines.append("test confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * width + "".join(f"{n:>{width}}" for n in names))
    for name, row in zip(names, result["test"]["confusion_matrix"]):
        lines.append(f"{name:>{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def main(args: list[str] | None = None) -> dict:
    """Run the recipe; returns the metrics dict also written to ``output_dir/classification_metrics.json``."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    hf_logging.set_verbosity_warning()
    cfg, lora_args, training_args = parse_recipe_args(
        [ClassifierArguments, LoraArguments, TrainingArguments], args
    )
    set_seed(training_args.seed)

    splits, id2label = build_splits(cfg)
    extra = {"drop_rate": cfg.drop_rate} if cfg.drop_rate is not None else {}
    model = load_classifier(cfg.model_name_or_path, id2label, **extra)
    tokenizer = load_tokenizer(cfg.tokenizer_name_or_path or cfg.model_name_or_path)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id >= model.config.vocab_size:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has neither a usable pad token nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token  # any in-vocabulary id will do: padding is masked out
    model.config.pad_token_id = tokenizer.pad_token_id
    context = model.config.context_length
    if cfg.max_length is not None and not 0 < cfg.max_length <= context:
        raise ValueError(f"max_length must be in [1, context_length={context}], got {cfg.max_length}")
    max_length = cfg.max_length or context
    tokenizer.model_max_length = context
    splits, truncated = tokenize_splits(splits, tokenizer, max_length, cfg.padding)
    model = prepare_model(model, cfg.strategy, cfg.trainable_blocks, lora_args)
    trainable, total = count_parameters(model)

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"] if len(splits["validation"]) else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=classification_metrics(),
    )
    train_runtime = trainer.train().metrics["train_runtime"]

    result = {
        "model_name_or_path": cfg.model_name_or_path,
        "strategy": cfg.strategy,
        "id2label": id2label,
        "trainable_params": trainable,
        "total_params": total,
        "train_runtime": train_runtime,
        "split_sizes": {name: len(part) for name, part in splits.items()},
        "truncated": truncated,
        "max_length": max_length,
        "config": {**asdict(cfg), **({"lora": asdict(lora_args)} if cfg.strategy == "lora" else {})},
    }
    for split in ("validation", "test"):
        if not len(splits[split]):
            continue
        out = trainer.predict(splits[split], metric_key_prefix=split)
        m = {k.removeprefix(f"{split}_"): v for k, v in out.metrics.items()}
        m["n"] = len(splits[split])
        m["confusion_matrix"] = confusion_matrix(out.label_ids, out.predictions.argmax(-1), len(id2label))
        result[split] = m

    def save(tmp: Path) -> None:
        final = trainer.model
        if cfg.strategy == "lora":
            final.save_pretrained(tmp / "adapter")
            tokenizer.save_pretrained(tmp / "adapter")
            final = merge_lora(final)
        final.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / METRICS_FILE).write_text(json.dumps(result, indent=2, default=str) + "\n")
        old = Path(training_args.output_dir)
        if old.is_dir():  # keep what the Trainer wrote there (checkpoints, logs)
            for entry in old.iterdir():
                if not (tmp / entry.name).exists():
                    shutil.move(str(entry), tmp / entry.name)

    if trainer.is_world_process_zero():
        save_atomically(save, training_args.output_dir)
        print(_summary(result))
        where = f"classifier: {training_args.output_dir}"
        if cfg.strategy == "lora":
            where += f" (merged LoRA); adapter: {Path(training_args.output_dir) / 'adapter'}"
        print(f"{where}; metrics: {Path(training_args.output_dir) / METRICS_FILE}")
    return result


if __name__ == "__main__":
    main()
