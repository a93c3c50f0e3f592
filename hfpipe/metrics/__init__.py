"""Metrics shipped as local `evaluate` modules, so loading them never needs the Hugging Face Hub.

Each metric lives in ``hfpipe/metrics/<name>/<name>.py``; ``evaluate.load`` given that file path copies it
into the local modules cache and imports it, without any network call.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import evaluate
import numpy as np

METRICS_DIR = Path(__file__).resolve().parent


def available_metrics() -> list[str]:
    """Names of the metrics shipped with hfpipe."""
    return sorted(p.parent.name for p in METRICS_DIR.glob("*/*.py") if p.stem == p.parent.name)


def load_metric(name: str, **load_kwargs: Any) -> evaluate.EvaluationModule:
    """Load the shipped metric `name` (e.g. "accuracy") with no network access.

    `load_kwargs` go to `evaluate.load` (e.g. `keep_in_memory=True`); unknown names raise `ValueError`.
    """
    script = METRICS_DIR / name / f"{name}.py"
    if not name.isidentifier() or not script.is_file():
        raise ValueError(f"Unknown metric {name!r}; available metrics: {', '.join(available_metrics())}")
    return evaluate.load(str(script), **load_kwargs)


def classification_metrics(
    average: str | None = None, zero_division: float = 0.0
) -> Callable[[Any], dict[str, float]]:
    """Return a Trainer `compute_metrics(eval_pred)` giving accuracy, precision, recall and f1.

    `eval_pred` is an `EvalPrediction` or `(logits, labels)`; if logits is a tuple its first element is used.
    Predictions are the argmax over the last dim and positions labelled -100 are ignored. `average`
    defaults to "binary" when the logits have 2 classes, "macro" otherwise.
    """
    metrics = {n: load_metric(n, keep_in_memory=True) for n in ("accuracy", "precision", "recall", "f1")}

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits, labels = eval_pred[0], eval_pred[1]
        logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits)
        labels = np.asarray(labels[0] if isinstance(labels, tuple) else labels).reshape(-1)
        preds = logits.argmax(-1).reshape(-1)
        keep = labels != -100
        preds, labels = preds[keep], labels[keep]
        avg = average or ("binary" if logits.shape[-1] == 2 else "macro")
        result = metrics["accuracy"].compute(predictions=preds, references=labels)
        for name in ("precision", "recall", "f1"):
            result |= metrics[name].compute(
                predictions=preds, references=labels, average=avg, zero_division=zero_division
            )
        return result

    return compute_metrics


def confusion_matrix(labels: Sequence[int], preds: Sequence[int], num_labels: int) -> list[list[int]]:
    """`num_labels` x `num_labels` confusion matrix: row = true label, column = predicted label."""
    metric = load_metric("confusion_matrix", keep_in_memory=True)
    result = metric.compute(predictions=preds, references=labels, labels=list(range(num_labels)))
    return result["confusion_matrix"]
