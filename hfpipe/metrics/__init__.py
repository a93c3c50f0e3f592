"""Classification metrics as one local `evaluate` module, so loading it never needs the Hugging Face Hub.

The module is ``hfpipe/metrics/classification/classification.py``; ``evaluate.load`` given that file path
copies it into the local modules cache and imports it, without any network call.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import evaluate
import numpy as np

CLASSIFICATION_SCRIPT = Path(__file__).resolve().parent / "classification" / "classification.py"


def load_classification_metric(**load_kwargs: Any) -> evaluate.EvaluationModule:
    """Load the classification metric (accuracy, precision, recall, F1, confusion matrix) with no network.

    `load_kwargs` go to `evaluate.load` (e.g. `keep_in_memory=True`).
    """
    return evaluate.load(str(CLASSIFICATION_SCRIPT), **load_kwargs)


def classification_metrics(
    average: str | None = None, zero_division: float = 0.0
) -> Callable[[Any], dict[str, float]]:
    """Return a Trainer `compute_metrics(eval_pred)` giving accuracy, precision, recall and f1.

    `eval_pred` is an `EvalPrediction` or `(logits, labels)`; if logits is a tuple its first element is used.
    Predictions are the argmax over the last dim and positions labelled -100 are ignored. `average`
    defaults to "binary" when the logits have 2 classes, "macro" otherwise.
    """
    metric = load_classification_metric(keep_in_memory=True)

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits, labels = eval_pred[0], eval_pred[1]
        logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits)
        labels = np.asarray(labels[0] if isinstance(labels, tuple) else labels).reshape(-1)
        preds = logits.argmax(-1).reshape(-1)
        keep = labels != -100
        avg = average or ("binary" if logits.shape[-1] == 2 else "macro")
        result = metric.compute(
            predictions=preds[keep], references=labels[keep], average=avg, zero_division=zero_division
        )
        del result["confusion_matrix"]  # Trainer logs scalars; `confusion_matrix()` gives the matrix
        return result

    return compute_metrics


def confusion_matrix(labels: Sequence[int], preds: Sequence[int], num_labels: int) -> list[list[int]]:
    """`num_labels` x `num_labels` confusion matrix: row = true label, column = predicted label."""
    metric = load_classification_metric(keep_in_memory=True)
    # "micro" is valid for any number of labels; only the matrix is kept
    result = metric.compute(
        predictions=preds, references=labels, labels=list(range(num_labels)), average="micro"
    )
    return result["confusion_matrix"]
