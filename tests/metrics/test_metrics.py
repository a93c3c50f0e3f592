"""hfpipe.metrics: local `evaluate` modules checked against scikit-learn, with the network blocked."""

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

METRICS = ["accuracy", "confusion_matrix", "f1", "precision", "recall"]
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
    from hfpipe.metrics import available_metrics, load_metric

    loaded = [load_metric(name).name for name in available_metrics()]
    acc = load_metric("accuracy").compute(references=[0, 1, 1, 0], predictions=[0, 1, 0, 0])
    print(json.dumps({"loaded": loaded, "accuracy": acc["accuracy"]}))
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

from hfpipe.metrics import available_metrics, classification_metrics, confusion_matrix, load_metric  # noqa: E402


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
def loaded():
    return {name: load_metric(name, keep_in_memory=True) for name in METRICS}


def test_available_metrics():
    assert available_metrics() == METRICS


def test_metrics_are_evaluate_modules(loaded):
    for name, metric in loaded.items():
        assert isinstance(metric, evaluate.Metric) and metric.name == name
        assert set(metric.features) == {"predictions", "references"}
        assert metric.citation and metric.description and metric.inputs_description


@pytest.mark.parametrize("name", ["../accuracy", "accuracy/accuracy", "bleu", ""])
def test_unknown_metric(name):
    with pytest.raises(ValueError, match="Unknown metric") as err:
        load_metric(name)
    assert all(metric in str(err.value) for metric in METRICS)


def test_accuracy_matches_sklearn(loaded):
    got = loaded["accuracy"].compute(references=Y3_TRUE, predictions=Y3_PRED)["accuracy"]
    assert got == pytest.approx(skm.accuracy_score(Y3_TRUE, Y3_PRED))


def test_binary_precision_differs_from_recall(loaded):
    p = loaded["precision"].compute(references=Y_TRUE, predictions=Y_PRED)["precision"]
    r = loaded["recall"].compute(references=Y_TRUE, predictions=Y_PRED)["recall"]
    f1 = loaded["f1"].compute(references=Y_TRUE, predictions=Y_PRED)["f1"]
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(1 / 2))
    assert f1 == pytest.approx(2 * p * r / (p + r))


@pytest.mark.parametrize("average", ["binary", "micro", "macro", "weighted", None])
@pytest.mark.parametrize("name", ["precision", "recall", "f1"])
def test_prf_matches_sklearn(loaded, name, average):
    y_true, y_pred = (Y_TRUE, Y_PRED) if average == "binary" else (Y3_TRUE, Y3_PRED)
    sk_fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
    expected = sk_fn(y_true, y_pred, average=average, zero_division=0)
    got = loaded[name].compute(references=y_true, predictions=y_pred, average=average, zero_division=0)[name]
    assert got == pytest.approx(expected.tolist() if average is None else expected)


def test_confusion_matrix_matches_sklearn(loaded):
    got = confusion_matrix(Y3_TRUE, Y3_PRED, num_labels=4)
    assert got == skm.confusion_matrix(Y3_TRUE, Y3_PRED, labels=[0, 1, 2, 3]).tolist()
    assert len(got) == 4 and all(type(v) is int for row in got for v in row)
    got = loaded["confusion_matrix"].compute(references=Y_TRUE, predictions=Y_PRED)["confusion_matrix"]
    assert got == [[3, 1], [2, 2]]


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
    """The subprocess started at import loaded every metric offline; its HF cache started empty."""
    stdout, stderr = OFFLINE_RUN.communicate(timeout=180)
    assert OFFLINE_RUN.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1]) == {"loaded": METRICS, "accuracy": 0.75}
    assert (Path(OFFLINE_HF_HOME) / "modules" / "evaluate_modules" / "metrics" / "accuracy").is_dir()
