"""hfpipe.metrics: the local `evaluate` classification module checked against scikit-learn, network blocked."""

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

KEYS = ["accuracy", "precision", "recall", "f1", "confusion_matrix"]
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
DEAD_PROXY = "http://127.0.0.1:9"
# Binary: TP=2, FP=1, FN=2 -> precision 2/3 != recall 1/2.
Y_TRUE = [0, 1, 1, 0, 1, 1, 0, 0]
Y_PRED = [0, 1, 0, 1, 1, 0, 0, 0]
# Multi-class with unequal supports: macro != weighted, precision != recall.
Y3_TRUE = [0, 1, 2, 2, 1, 0, 2, 1, 2, 2]
Y3_PRED = [0, 2, 2, 1, 1, 0, 2, 0, 2, 0]

# Run in a fresh interpreter with an empty HF cache: any socket connection raises.
OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json
    import socket

    def no_network(*args, **kwargs):
        raise RuntimeError(f"network access attempted: {args!r}")

    socket.socket.connect = socket.socket.connect_ex = socket.create_connection = no_network
    from hfpipe.metrics import load_classification_metric

    metric = load_classification_metric()
    result = metric.compute(references=[0, 1, 1, 0], predictions=[0, 1, 0, 0])
    print(json.dumps({"name": metric.name, **result}))
    """
)


def _start_offline_run() -> tuple[subprocess.Popen, str]:
    """Fresh interpreter, empty HF cache, offline flags and an unreachable proxy."""
    hf_home = tempfile.mkdtemp(prefix="hfpipe-offline-metrics-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env |= OFFLINE_ENV | {"HF_HOME": hf_home, "HTTPS_PROXY": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY}
    env |= {"https_proxy": DEAD_PROXY, "http_proxy": DEAD_PROXY}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-c", OFFLINE_SCRIPT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    atexit.register(shutil.rmtree, hf_home, ignore_errors=True)
    atexit.register(proc.kill)
    return proc, hf_home


# Started at import, before the heavy imports below, so its ~10 s start-up (evaluate imports transformers)
# overlaps the in-process tests instead of adding to them.
OFFLINE_RUN, OFFLINE_HF_HOME = _start_offline_run()

import evaluate  # noqa: E402
import huggingface_hub  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn import metrics as skm  # noqa: E402
from transformers import EvalPrediction  # noqa: E402

from hfpipe.metrics import classification_metrics, confusion_matrix, load_classification_metric  # noqa: E402


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Offline flags on, and any socket connection in this process fails."""
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)


@pytest.fixture(scope="module")
def metric():
    return load_classification_metric(keep_in_memory=True)


def test_is_one_evaluate_module(metric):
    assert isinstance(metric, evaluate.Metric) and metric.name == "classification"
    assert set(metric.features) == {"predictions", "references"}
    assert metric.citation and metric.description and all(k in metric.inputs_description for k in KEYS)


def test_binary_in_one_compute(metric):
    result = metric.compute(references=Y_TRUE, predictions=Y_PRED)
    assert list(result) == KEYS
    assert result["accuracy"] == pytest.approx(5 / 8)
    assert (result["precision"], result["recall"]) == (pytest.approx(2 / 3), pytest.approx(1 / 2))
    assert result["f1"] == pytest.approx(4 / 7)  # 2pr / (p + r)
    assert result["confusion_matrix"] == [[3, 1], [2, 2]]
    assert all(type(v) is float for k, v in result.items() if k != "confusion_matrix")
    assert all(type(v) is int for row in result["confusion_matrix"] for v in row)


@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
def test_multiclass_matches_sklearn(metric, average):
    result = metric.compute(references=Y3_TRUE, predictions=Y3_PRED, average=average)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(Y3_TRUE, Y3_PRED))
    for name, sk_fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        expected = sk_fn(Y3_TRUE, Y3_PRED, average=average, zero_division=0)
        assert result[name] == pytest.approx(expected.tolist() if average is None else expected), name
    assert result["confusion_matrix"] == skm.confusion_matrix(Y3_TRUE, Y3_PRED).tolist()


def test_labels_order_the_matrix_and_weights_count(metric):
    result = metric.compute(references=Y3_TRUE, predictions=Y3_PRED, labels=[2, 1, 0, 3], average="macro")
    assert result["confusion_matrix"] == skm.confusion_matrix(Y3_TRUE, Y3_PRED, labels=[2, 1, 0, 3]).tolist()
    assert result["precision"] == pytest.approx(
        skm.precision_score(Y3_TRUE, Y3_PRED, labels=[2, 1, 0, 3], average="macro", zero_division=0)
    )
    weights = [1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    weighted = metric.compute(references=Y_TRUE, predictions=Y_PRED, sample_weight=weights)
    assert weighted["accuracy"] == pytest.approx(5.5 / 8.5)  # the right ones weigh 1 + 2 + 1 + 1 + 0.5
    assert weighted["confusion_matrix"] == [[2.5, 1.0], [2.0, 3.0]]


def test_multiclass_with_binary_average_is_an_error(metric):
    with pytest.raises(ValueError, match="average"):
        metric.compute(references=Y3_TRUE, predictions=Y3_PRED)


def test_confusion_matrix_helper_matches_sklearn():
    got = confusion_matrix(Y3_TRUE, Y3_PRED, num_labels=4)
    assert got == skm.confusion_matrix(Y3_TRUE, Y3_PRED, labels=[0, 1, 2, 3]).tolist()
    assert len(got) == 4 and all(type(v) is int for row in got for v in row)
    assert confusion_matrix(Y_TRUE, Y_PRED, num_labels=2) == [[3, 1], [2, 2]]


def _logits(preds, num_labels, seed=0):
    """Random logits whose argmax over the last dim is `preds`."""
    logits = np.random.default_rng(seed).normal(size=(*np.shape(preds), num_labels)).astype(np.float32)
    np.put_along_axis(logits, np.asarray(preds)[..., None], 10.0, axis=-1)
    return logits


def _sk_prf(y_true, y_pred, average):
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, average=average, zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, average=average, zero_division=0),
        "f1": skm.f1_score(y_true, y_pred, average=average, zero_division=0),
    }


def test_compute_metrics_binary_tuple_logits():
    compute_metrics = classification_metrics()
    hidden = np.zeros((len(Y_PRED), 3, 4), dtype=np.float32)  # extra model outputs, ignored
    result = compute_metrics(
        EvalPrediction(predictions=(_logits(Y_PRED, 2), hidden), label_ids=np.array(Y_TRUE))
    )
    assert result == pytest.approx(_sk_prf(Y_TRUE, Y_PRED, "binary"))
    assert result["precision"] != pytest.approx(result["recall"])
    assert all(type(v) is float for v in result.values())
    assert compute_metrics(((_logits(Y_PRED, 2),), np.array(Y_TRUE))) == result  # plain tuple works too


def test_compute_metrics_multiclass_defaults_to_macro():
    result = classification_metrics()((_logits(Y3_PRED, 3), np.array(Y3_TRUE)))
    assert result == pytest.approx(_sk_prf(Y3_TRUE, Y3_PRED, "macro"))
    weighted = classification_metrics(average="weighted")((_logits(Y3_PRED, 3), np.array(Y3_TRUE)))
    assert weighted == pytest.approx(_sk_prf(Y3_TRUE, Y3_PRED, "weighted"))
    assert weighted["f1"] != pytest.approx(result["f1"])


def test_compute_metrics_ignores_minus_100_labels():
    labels = np.array([Y3_TRUE[:5] + [-100] * 3, Y3_TRUE[5:] + [-100] * 3])  # token-level, padded
    preds = np.array([Y3_PRED[:5] + [1] * 3, Y3_PRED[5:] + [2] * 3])
    result = classification_metrics()((_logits(preds, 3), labels))
    assert result == pytest.approx(_sk_prf(Y3_TRUE, Y3_PRED, "macro"))


def test_loads_in_offline_subprocess_with_dead_proxy():
    """The subprocess started at import loaded and ran the metric offline; its HF cache started empty."""
    stdout, stderr = OFFLINE_RUN.communicate(timeout=180)
    assert OFFLINE_RUN.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1]) == {
        "name": "classification",
        "accuracy": 0.75,
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "confusion_matrix": [[2, 0], [1, 1]],
    }
    assert (Path(OFFLINE_HF_HOME) / "modules" / "evaluate_modules" / "metrics" / "classification").is_dir()
