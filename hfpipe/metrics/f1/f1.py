"""F1 (local `evaluate` module, no Hub)."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = (
    "F1 = 2 * precision * recall / (precision + recall), the harmonic mean of precision and recall."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted labels.
    references (`list[int]`): ground-truth labels.
    labels (`list[int]`, *optional*): labels to include when `average != "binary"`.
    pos_label (`int`, defaults to 1): the positive class when `average="binary"`.
    average (`str` or `None`, defaults to `"binary"`): `"binary"`, `"micro"`, `"macro"`, `"weighted"`,
        `"samples"`, or `None` for one score per label.
    sample_weight (`list[float]`, *optional*): per-sample weights.
    zero_division (`"warn"`, `0`, `1` or `np.nan`, defaults to `"warn"`): value returned on a zero division.
Returns:
    f1 (`float`, or `list[float]` when `average=None`): in [0, 1].
"""

_CITATION = """@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12}, pages={2825--2830}, year={2011}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"
            ],
        )

    def _compute(
        self,
        predictions,
        references,
        labels=None,
        pos_label=1,
        average="binary",
        sample_weight=None,
        zero_division="warn",
    ):
        score = f1_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        return {"f1": score.tolist() if average is None else float(score)}
