"""Classification metrics in one local `evaluate` module (no Hub): accuracy, precision, recall, F1, confusion.

`evaluate.load("<path to this file>")` copies it into the local modules cache and imports it, with no
network call.
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

_DESCRIPTION = """
Every usual single-label classification metric from one pass over the predictions:
accuracy = correct / all; precision = TP / (TP + FP); recall = TP / (TP + FN);
F1 = 2 * precision * recall / (precision + recall); confusion_matrix[i][j] counts samples with reference
label i predicted as label j.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted labels.
    references (`list[int]`): ground-truth labels.
    average (`str` or `None`, defaults to `"binary"`): how precision, recall and F1 combine the labels:
        `"binary"` (scores of `pos_label` only), `"micro"`, `"macro"`, `"weighted"`, or `None` (one score
        per label).
    labels (`list[int]`, *optional*): the labels to score when `average != "binary"`, and the order of the
        confusion matrix's rows and columns (default: the sorted labels seen).
    pos_label (`int`, defaults to 1): the positive class when `average="binary"`.
    sample_weight (`list[float]`, *optional*): per-sample weights.
    zero_division (`0`, `1`, `np.nan` or `"warn"`, defaults to `0`): the score of a precision or recall
        whose denominator is zero.
Returns:
    accuracy (`float`), precision, recall, f1 (`float`, or `list[float]` when `average=None`),
    confusion_matrix (`list[list[int]]`, floats with `sample_weight`): rows are references, columns
    predictions.
Example:
    >>> load_classification_metric().compute(references=[0, 1, 1], predictions=[0, 1, 0])
    {'accuracy': 0.6666666666666666, 'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666,
     'confusion_matrix': [[1, 0], [1, 1]]}
"""

_CITATION = """@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12}, pages={2825--2830}, year={2011}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(
        self,
        predictions,
        references,
        average="binary",
        labels=None,
        pos_label=1,
        sample_weight=None,
        zero_division=0.0,
    ):
        precision, recall, f1, _ = precision_recall_fscore_support(
            references,
            predictions,
            average=average,
            labels=labels,
            pos_label=pos_label,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        scores = {"precision": precision, "recall": recall, "f1": f1}
        matrix = confusion_matrix(references, predictions, labels=labels, sample_weight=sample_weight)
        return {
            "accuracy": float(accuracy_score(references, predictions, sample_weight=sample_weight)),
            **{name: value.tolist() if average is None else float(value) for name, value in scores.items()},
            "confusion_matrix": matrix.tolist(),
        }
