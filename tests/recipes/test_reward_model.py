"""recipes/reward_model.py end to end: held-out accuracy, the saved model in pipeline / Auto class / remote code."""

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "preference"))
sys.path.insert(0, str(REPO / "tests"))
from pref_fixtures import common_args, one_torch_thread, preference_records, save_start_model, write_json  # noqa: E402, F401
from without_hfpipe import run_without_hfpipe  # noqa: E402

from hfpipe.cli import reward_model  # noqa: E402
from hfpipe.preference.reward import evaluate_pairs  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("reward")
    return save_start_model(work / "sft"), write_json(work / "pref.json", preference_records(40))


def args(setup, out, *extra):
    start, data = setup
    return [
        "--model_name_or_path", str(start), "--dataset_name", str(data), "--learning_rate", "2e-3",
        "--save_strategy", "no", *common_args(out, "--max_steps", "12", *extra),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "out"
    return reward_model.main(args(setup, out, "--eval_strategy", "steps", "--eval_steps", "12")), out


def test_reward_model_learns_and_reports(trained, setup):
    result, out = trained
    m = result.metrics
    assert m["test_pairs"] == 4 and m["test_accuracy"] >= 0.75 and m["test_margin"] > m["test_margin_before"]
    assert "eval_accuracy" in m and "eval_margin" in m  # trl's validation metrics
    results = json.loads((out / "results.json").read_text())
    assert results["stage"] == "reward_model" and results["metrics"]["test_accuracy"] == m["test_accuracy"]
    # the report equals an independent evaluation of the saved model
    saved = AutoModelForSequenceClassification.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    from hfpipe.preference.data import PreferenceDataArguments, load_pairs, split_pairs

    test = split_pairs(load_pairs(str(setup[1]))[0], PreferenceDataArguments())["test"]
    again = evaluate_pairs(saved, tok, test)
    assert again["accuracy"] == m["test_accuracy"] and again["margin"] == pytest.approx(
        m["test_margin"], abs=1e-5
    )


def test_saved_model_scores_with_pipeline_and_auto_class(trained):
    _, out = trained
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id
    text = "It is red. Thank you." + tok.eos_token
    with torch.no_grad():
        logit = model(**tok(text, return_tensors="pt")).logits[0, 0].item()
    scored = pipeline("text-classification", model=str(out), function_to_apply="none")(text)[0]
    assert scored["label"] == "reward" and scored["score"] == pytest.approx(logit, abs=1e-5)


REMOTE_CHILD = r"""
from transformers import pipeline
clf = pipeline("text-classification", model=sys.argv[1], trust_remote_code=True, function_to_apply="none")
assert "hfpipe" not in sys.modules
assert type(clf.model).__module__.startswith("transformers_modules"), type(clf.model).__module__
print(clf(sys.argv[2])[0]["score"])
"""


def test_saved_model_scores_where_hfpipe_is_not_installed(trained, tmp_path):
    _, out = trained
    text = "It is blue. Go away, fool."
    proc = run_without_hfpipe(REMOTE_CHILD, out, text, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = pipeline("text-classification", model=str(out), function_to_apply="none")(text)[0]["score"]
    assert float(proc.stdout.strip().splitlines()[-1]) == pytest.approx(expected, abs=1e-5)


def test_lora_reward_model_saves_a_merged_classifier(setup, tmp_path):
    out = tmp_path / "lora"
    result = reward_model.main(args(setup, out, "--use_peft", "true", "--lora_r", "4", "--max_steps", "3"))
    assert hasattr(result.trainer.model, "peft_config")
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").is_file()
    assert pipeline("text-classification", model=str(out))("It is red.")[0]["label"] == "reward"


def test_multi_label_start_is_an_error(setup, tmp_path):
    from hfpipe import GPTForSequenceClassification
    from hfpipe.loading import load_model

    two = load_model(setup[0], "sequence-classification", num_labels=2)
    assert isinstance(two, GPTForSequenceClassification)
    two.save_pretrained(tmp_path / "two")
    with pytest.raises(ValueError, match="score head with 2 labels"):
        reward_model.main(args((tmp_path / "two", setup[1]), tmp_path / "out"))
