"""Accuracy: the fraction of predictions equal to the references (local `evaluate` module, no Hub)."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = "Accuracy = (TP + TN) / (TP + TN + FP + FN), the proportion of correct predictions."

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted labels.
    references (`list[int]`): ground-truth labels.
    normalize (`bool`, defaults to `True`): if `False`, return the number of correct predictions instead.
    sample_weight (`list[float]`, *optional*): per-sample weights.
Returns:
    accuracy (`float` or `int`): in [0, 1] when `normalize=True`, else a count.
Example:
    >>> load_metric("accuracy").compute(references=[0, 1, 1], predictions=[0, 1, 0])
    {'accuracy': 0.6666666666666666}
"""

_CITATION = """@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12}, pages={2825--2830}, year={2011}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"
            ],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
