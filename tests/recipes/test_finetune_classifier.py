"""recipes/finetune_classifier.py end to end on a tiny GPT and a synthetic spam set: training, outputs, bad input."""

import json
import random
from pathlib import Path

import pytest
import torch
from peft import AutoPeftModelForSequenceClassification
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from hfpipe import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from hfpipe.classification import balance_classes, encode_labels, load_labeled_dataset, split_dataset
from hfpipe.tokenization import train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[2]
from hfpipe.cli import finetune_classifier  # noqa: E402

SPAM = ["free", "win", "cash", "prize", "claim", "urgent", "txt", "reward", "ringtone", "offer"]
HAM = ["ok", "see", "you", "later", "home", "lunch", "mum", "tonight", "sorry", "meet"]
FILLER = ["the", "a", "and", "to", "at", "is", "it", "for"]


def message(rng: random.Random, words: list[str]) -> str:
    n = rng.randint(3, 14)
    return " ".join(rng.choice(words) if i % 2 == 0 else rng.choice(FILLER) for i in range(n))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny causal checkpoint with its tokenizer, and a TSV of 130 ham / 40 spam messages (label<TAB>text)."""
    root = tmp_path_factory.mktemp("clf")
    rng = random.Random(0)
    rows = [("ham", message(rng, HAM)) for _ in range(130)] + [
        ("spam", message(rng, SPAM)) for _ in range(40)
    ]
    rng.shuffle(rows)
    data = root / "sms.tsv"
    data.write_text("".join(f"{label}\t{text}\n" for label, text in rows))
    tokenizer = train_bpe_tokenizer([t for _, t in rows], vocab_size=300, model_max_length=64)
    torch.manual_seed(0)
    config = GPTConfig.from_preset("tiny", vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id)
    ckpt = root / "causal"
    GPTForCausalLM(config).save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)
    return root, data, ckpt


def args(setup, out: str, *extra: str) -> list[str]:
    root, data, ckpt = setup
    common = ["--model_name_or_path", str(ckpt), "--dataset_name", str(data), "--output_dir", str(root / out)]
    fast = ["--num_train_epochs", "6", "--per_device_train_batch_size", "8", "--logging_steps", "100"]
    return [*common, *fast, "--eval_strategy", "no", "--bf16", "false", *extra]


@pytest.fixture(scope="module")
def last_blocks_run(setup):
    config = REPO / "recipes" / "configs" / "classifier_sms_spam.yaml"
    extra = ["--learning_rate", "3e-3", "--trainable_blocks", "2", "--max_length", "10"]
    result = finetune_classifier.main(["--config", str(config), *args(setup, "last", *extra)])
    return result, setup[0] / "last"


def test_last_blocks_learns_and_reports_metrics(last_blocks_run):
    result, out = last_blocks_run
    saved = json.loads((out / "results.json").read_text())
    assert saved["stage"] == "classifier" and saved["split_sizes"] == result["split_sizes"]
    assert saved["test"] == result["test"] and saved["metrics"]["test_accuracy"] == result["test"]["accuracy"]
    assert result["id2label"] == {0: "ham", 1: "spam"}
    assert result["split_sizes"] == {"train": 56, "validation": 8, "test": 16}  # balanced 40 + 40, 70/10/20
    assert result["trainable_params"] < result["total_params"]
    for split in ("validation", "test"):
        m = result[split]
        assert {"accuracy", "precision", "recall", "f1", "confusion_matrix", "n"} <= set(m)
        cm = m["confusion_matrix"]
        assert sum(map(sum, cm)) == m["n"] and m["accuracy"] == pytest.approx((cm[0][0] + cm[1][1]) / m["n"])
    assert result["test"]["accuracy"] >= 0.85  # a random classifier gets 0.5 on the balanced test split
    assert result["truncated"]["train"] > 0 and result["max_length"] == 10


def test_output_loads_with_pipeline_and_auto_class(last_blocks_run, setup):
    result, out = last_blocks_run
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert isinstance(model, GPTForSequenceClassification) and model.config.id2label == {0: "ham", 1: "spam"}
    # the pipeline reproduces the test accuracy on the same seeded split
    ds, id2label = encode_labels(
        load_labeled_dataset(str(setup[1]), column_names=["label", "text"]), ["ham", "spam"]
    )
    test = split_dataset(balance_classes(ds, 123), 0.1, 0.2, 123)["test"]
    clf = pipeline("text-classification", model=str(out))
    preds = clf(list(test["text"]), truncation=True, max_length=10)
    correct = sum(p["label"] == id2label[y] for p, y in zip(preds, test["labels"]))
    assert correct / len(test) == pytest.approx(result["test"]["accuracy"])


def test_lora_writes_adapter_and_merged_model(setup, capsys):
    config = REPO / "recipes" / "configs" / "classifier_sms_spam_lora.yaml"
    extra = ["--learning_rate", "1e-2", "--lora_r", "4", "--lora_target_modules", "qkv", "fc1"]
    result = finetune_classifier.main(["--config", str(config), *args(setup, "lora", *extra)])
    out = setup[0] / "lora"
    assert "(merged LoRA); adapter:" in capsys.readouterr().out
    assert result["strategy"] == "lora" and result["config"]["lora"]["lora_r"] == 4
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert {"base_model.model.score.weight", "base_model.model.score.bias"} <= set(adapter)
    assert {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in adapter if "lora_" in k} == {"qkv", "fc1"}

    tok = AutoTokenizer.from_pretrained(out)
    batch = tok(["free cash prize", "see you at home later"], padding=True, return_tensors="pt")
    merged = AutoModelForSequenceClassification.from_pretrained(out).eval()
    peft_model = AutoPeftModelForSequenceClassification.from_pretrained(out / "adapter").eval()
    torch.testing.assert_close(merged(**batch).logits, peft_model(**batch).logits, atol=1e-5, rtol=1e-5)
    assert not any("lora" in k for k in load_file(out / "model.safetensors"))
    assert pipeline("text-classification", model=str(out))("free cash prize")[0]["label"] in {"ham", "spam"}
    assert result["test"]["accuracy"] >= 0.75


def test_bad_input_is_a_clear_error(setup, tmp_path, caplog):
    root, data, ckpt = setup
    bad = tmp_path / "bad.tsv"
    bad.write_text(data.read_text() + "spma\tfree cash\n")
    with pytest.raises(ValueError, match=r"outside the label set \['ham', 'spam'\]: 'spma'"):
        finetune_classifier.main([*args(setup, "x"), "--dataset_name", str(bad), "--column_names", "label", "text",
                                  "--class_names", "ham", "spam"])  # fmt: skip
    one = tmp_path / "one.tsv"
    one.write_text("".join(line + "\n" for line in data.read_text().splitlines() if line.startswith("ham")))
    with pytest.raises(ValueError, match="only one class left"):
        finetune_classifier.main(
            [
                *args(setup, "x"),
                "--dataset_name",
                str(one),
                "--column_names",
                "label",
                "text",
                "--class_names",
                "ham",
                "spam",
                "--balance",
                "true",
            ]  # fmt: skip
        )
    GPTForSequenceClassification(GPTConfig.from_preset("tiny")).save_pretrained(tmp_path / "clf")
    with pytest.raises(ValueError, match="not a causal LM"):
        finetune_classifier.main([*args(setup, "x"), "--column_names", "label", "text",
                                  "--model_name_or_path", str(tmp_path / "clf")])  # fmt: skip
    with pytest.raises(ValueError, match=r"max_length must be in \[1, context_length=64\]"):
        finetune_classifier.main([*args(setup, "x"), "--column_names", "label", "text", "--max_length", "65"])
    with pytest.raises(ValueError, match="strategy must be one of"):
        finetune_classifier.main(
            [*args(setup, "x"), "--column_names", "label", "text", "--strategy", "prefix"]
        )
    assert not (root / "x").exists()
