"""Classification metrics of a saved classifier checkpoint on a labelled file."""

import json

import pytest
import torch

from hfpipe import GPTConfig, GPTForSequenceClassification
from hfpipe.evaluation.classifier import evaluate_classifier, is_classifier, predict_labels
from hfpipe.loading import load_model_and_tokenizer


def test_classifier_metrics_match_its_predictions(tmp_path, bpe_tokenizer, paragraphs):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=len(bpe_tokenizer), context_length=64, emb_dim=32, n_heads=2, n_layers=2,
                       initializer_range=0.5, pad_token_id=bpe_tokenizer.pad_token_id, num_labels=2,
                       id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1})  # fmt: skip
    GPTForSequenceClassification(config).save_pretrained(tmp_path / "clf")
    bpe_tokenizer.save_pretrained(tmp_path / "clf")
    assert is_classifier(str(tmp_path / "clf"))
    texts = [p[:40] for p in paragraphs] + [p[-50:] for p in paragraphs]
    labels = ["ham", "spam"] * (len(texts) // 2)
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"sms": t, "category": y}) + "\n" for t, y in zip(texts, labels)))

    model, tokenizer = load_model_and_tokenizer(tmp_path / "clf", task="sequence-classification")
    metrics = evaluate_classifier(
        model, tokenizer, str(data), "sms", "category", batch_size=5, progress=False
    )
    preds = predict_labels(model, tokenizer, texts, batch_size=1, progress=False)  # unpadded, one at a time
    truth = [0 if y == "ham" else 1 for y in labels]
    assert metrics["classification/accuracy"] == pytest.approx(
        sum(p == t for p, t in zip(preds, truth)) / len(texts)
    )
    assert set(metrics) == {f"classification/{k}" for k in ("accuracy", "precision", "recall", "f1")}

    data.write_text(json.dumps({"sms": "x", "category": "eggs"}) + "\n")
    with pytest.raises(ValueError, match="outside the label set"):
        evaluate_classifier(model, tokenizer, str(data), "sms", "category", progress=False)
