"""Classification metrics (accuracy, precision, recall, F1) of a classifier checkpoint on a labelled split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hfpipe.loading import ADAPTER_CONFIG, read_config


def is_classifier(name_or_path: str) -> bool:
    """True for a sequence-classification checkpoint (a full model or a peft ``SEQ_CLS`` adapter)."""
    adapter = Path(name_or_path) / ADAPTER_CONFIG
    if adapter.is_file():
        return json.loads(adapter.read_text()).get("task_type") == "SEQ_CLS"
    archs = read_config(name_or_path).get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


@torch.inference_mode()
def predict_labels(
    model, tokenizer, texts: list[str], batch_size: int = 16, progress: bool = True
) -> np.ndarray:
    """The predicted class id of each text (truncated to the model's context), in batches."""
    max_length = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
    was_training = model.training
    model.eval()
    preds = []
    for i in tqdm(range(0, len(texts), batch_size), desc="classifying", unit="batch", disable=not progress):
        enc = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
                        add_special_tokens=False, return_tensors="pt").to(model.device)  # fmt: skip
        preds.append(model(**enc).logits.argmax(-1).cpu())
    model.train(was_training)
    return torch.cat(preds).numpy()


def evaluate_classifier(
    model,
    tokenizer,
    source: str,
    text_column: str = "text",
    label_column: str = "label",
    column_names: list[str] | None = None,
    split: str = "test",
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, float]:
    """Accuracy, precision, recall and F1 (binary for 2 classes, else macro) on a labelled dataset.

    Labels are mapped with the model's own ``id2label``, so a label it was not trained on is an error.
    """
    from hfpipe.classification import encode_labels, load_labeled_dataset
    from hfpipe.metrics import classification_metrics

    id2label = {int(k): v for k, v in model.config.id2label.items()}
    ds = load_labeled_dataset(source, text_column, label_column, column_names, split=split)
    if len(ds) == 0:
        raise ValueError(f"{source!r}: the labelled dataset is empty; give it at least one example")
    ds, _ = encode_labels(ds, [id2label[i] for i in range(len(id2label))])
    preds = predict_labels(model, tokenizer, list(ds["text"]), batch_size, progress)
    one_hot = np.eye(len(id2label))[preds]  # compute_metrics takes logits
    metrics = classification_metrics()((one_hot, np.asarray(ds["labels"])))
    return {f"classification/{k}": float(v) for k, v in metrics.items()}
