"""Confusion matrix (local `evaluate` module, no Hub)."""

import datasets
import evaluate
from sklearn.metrics import confusion_matrix

_DESCRIPTION = "Confusion matrix C where C[i][j] counts samples with reference label i predicted as label j."

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted labels.
    references (`list[int]`): ground-truth labels.
    labels (`list[int]`, *optional*): label order of the rows/columns (default: sorted labels seen).
    sample_weight (`list[float]`, *optional*): per-sample weights.
    normalize (`"true"`, `"pred"`, `"all"` or `None`): normalise over references, predictions or all.
Returns:
    confusion_matrix (`list[list[int | float]]`): shape (n_labels, n_labels).
Example:
    >>> load_metric("confusion_matrix").compute(references=[0, 1, 1], predictions=[0, 1, 0])
    {'confusion_matrix': [[1, 0], [1, 1]]}
"""

_CITATION = """@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12}, pages={2825--2830}, year={2011}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ConfusionMatrix(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.confusion_matrix.html"
            ],
        )

    def _compute(self, predictions, references, labels=None, sample_weight=None, normalize=None):
        matrix = confusion_matrix(
            references, predictions, labels=labels, sample_weight=sample_weight, normalize=normalize
        )
        return {"confusion_matrix": matrix.tolist()}
