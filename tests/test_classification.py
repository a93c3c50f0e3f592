"""hfpipe.classification: labelled data, label mapping, balancing, splits, tokenization, model building."""

import json
import logging
from collections import Counter

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from peft import PeftModel
from transformers import GPT2Config, GPT2LMHeadModel

from hfpipe import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from hfpipe.classification import (
    balance_classes,
    encode_labels,
    load_classifier,
    load_labeled_dataset,
    prepare_model,
    split_dataset,
    tokenize_splits,
)
from hfpipe.tokenization import train_bpe_tokenizer

WORDS = "free prize win call now text claim cash lunch see you later home ok love meet tonight".split()


def labelled(n_per_class: dict[str, int]) -> Dataset:
    rows = [(f"{label} message {i} " + " ".join(WORDS[i % 8 : i % 8 + 4]), label) for label, n in n_per_class.items()
            for i in range(n)]  # fmt: skip
    return Dataset.from_dict({"text": [t for t, _ in rows], "label": [lab for _, lab in rows]})


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer([" ".join(WORDS)] * 20 + ["ham spam message 0123456789"] * 5, vocab_size=300)


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("causal")
    GPTForCausalLM(GPTConfig.from_preset("tiny")).save_pretrained(path)
    return path


# data loading ------------------------------------------------------------------------------------------


def test_load_tsv_without_header_keeps_quotes(tmp_path):
    path = tmp_path / "sms.tsv"
    path.write_text('ham\tOk lar... "joking" wif u\nspam\tWIN a "free" prize\nham\t\n')
    ds = load_labeled_dataset(str(path), column_names=["label", "text"])
    assert ds.column_names == ["text", "label"]
    assert ds["text"] == ['Ok lar... "joking" wif u', 'WIN a "free" prize']  # the row without text is dropped
    assert ds["label"] == ["ham", "spam"]


def test_load_jsonl_renames_columns_and_names_missing_ones(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"sentence": f"s{i}", "y": i % 2, "extra": 1}) for i in range(4)))
    ds = load_labeled_dataset(str(path), text_column="sentence", label_column="y")
    assert ds.column_names == ["text", "label"] and ds["label"] == [0, 1, 0, 1]
    with pytest.raises(ValueError, match=r"no column 'label'.*\['sentence', 'y', 'extra'\]"):
        load_labeled_dataset(str(path), text_column="sentence")
    with pytest.raises(FileNotFoundError):
        load_labeled_dataset(str(tmp_path / "missing.tsv"))


# labels ------------------------------------------------------------------------------------------------


def test_encode_labels_inferred_and_configured():
    ds = labelled({"spam": 2, "ham": 3})
    enc, id2label = encode_labels(ds)
    assert id2label == {0: "ham", 1: "spam"} and "label" not in enc.column_names
    assert enc["labels"] == [1, 1, 0, 0, 0]
    enc, id2label = encode_labels(ds, ["spam", "ham"])
    assert id2label == {0: "spam", 1: "ham"} and enc["labels"] == [0, 0, 1, 1, 1]
    ints = Dataset.from_dict({"text": ["a", "b", "c"], "label": [10, 2, 10]})
    assert encode_labels(ints)[1] == {0: "2", 1: "10"}  # numeric labels sort numerically


def test_encode_labels_class_label_feature():
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    ds = Dataset.from_dict({"text": ["a", "b", "c"], "label": [1, 0, 1]}, features=features)
    enc, id2label = encode_labels(ds)
    assert id2label == {0: "neg", 1: "pos"} and enc["labels"] == [1, 0, 1]


def test_labels_outside_the_label_set_are_an_error():
    ds = labelled({"ham": 3, "spam": 2, "smap": 1})
    with pytest.raises(
        ValueError, match=r"1 of 6 labels are outside the label set \['ham', 'spam'\]: 'smap'"
    ):
        encode_labels(ds, ["ham", "spam"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        encode_labels(labelled({"ham": 3}))
    with pytest.raises(ValueError, match="duplicates"):
        encode_labels(ds, ["ham", "ham"])


# balancing and splitting -------------------------------------------------------------------------------


def test_balance_downsamples_majority_seeded():
    ds, _ = encode_labels(labelled({"ham": 40, "spam": 7}))
    balanced = balance_classes(ds, seed=123)
    assert Counter(balanced["labels"]) == {0: 7, 1: 7}
    assert set(balanced["text"]) <= set(ds["text"])
    assert {t for t in balanced["text"] if t.startswith("spam")} == {
        t for t in ds["text"] if t.startswith("spam")
    }
    assert balanced["text"] == balance_classes(ds, seed=123)["text"]
    assert balanced["text"] != balance_classes(ds, seed=7)["text"]


def test_split_sizes_disjoint_and_seeded():
    ds, _ = encode_labels(labelled({"ham": 747, "spam": 747}))
    splits = split_dataset(ds, 0.1, 0.2, seed=123)
    assert {k: len(v) for k, v in splits.items()} == {"train": 1045, "validation": 149, "test": 300}
    texts = [set(splits[k]["text"]) for k in ("train", "validation", "test")]
    assert sum(map(len, texts)) == len(set().union(*texts)) == 1494
    assert splits["test"]["text"] == split_dataset(ds, 0.1, 0.2, seed=123)["test"]["text"]
    assert splits["test"]["text"] != split_dataset(ds, 0.1, 0.2, seed=1)["test"]["text"]
    with pytest.raises(ValueError, match="shares"):
        split_dataset(ds, 0.1, 0.9)


def test_one_class_left_is_an_error():
    ds, _ = encode_labels(labelled({"ham": 30, "spam": 1}))
    with pytest.raises(ValueError, match=r"only one class left in the (train|test) split \(ham"):
        split_dataset(ds, 0.0, 0.5, seed=0, id2label={0: "ham", 1: "spam"})
    with pytest.raises(ValueError, match="only one class left"):
        balance_classes(ds.filter(lambda x: x == 0, input_columns="labels"))


def test_book_split_of_the_sms_spam_collection(shared_data):
    ds = load_labeled_dataset(str(shared_data / "sms_spam_collection.tsv"), column_names=["label", "text"])
    ds, id2label = encode_labels(ds, ["ham", "spam"])
    assert Counter(ds["labels"]) == {0: 4827, 1: 747}
    splits = split_dataset(balance_classes(ds, 123), 0.1, 0.2, 123, id2label)
    assert {k: len(v) for k, v in splits.items()} == {"train": 1045, "validation": 149, "test": 300}
    assert sum(Counter(v["labels"])[1] for v in splits.values()) == 747


# tokenization ------------------------------------------------------------------------------------------


def test_tokenize_truncates_and_says_so(tokenizer, caplog):
    ds, _ = encode_labels(labelled({"ham": 6, "spam": 6}))
    splits = split_dataset(ds, 0.0, 0.5, seed=0)
    lengths = [len(tokenizer(t)["input_ids"]) for t in splits["train"]["text"]]
    limit = sorted(lengths)[len(lengths) // 2]
    with caplog.at_level(logging.WARNING, logger="hfpipe.classification"):
        out, truncated = tokenize_splits(splits, tokenizer, max_length=limit)
    assert truncated["train"] == sum(n > limit for n in lengths) > 0
    assert f"{truncated['train']} of 6 train texts are longer than max_length={limit} tokens" in caplog.text
    assert [len(x) for x in out["train"]["input_ids"]] == [
        min(n, limit) for n in lengths
    ]  # "longest": unpadded
    assert out["train"].column_names == ["labels", "input_ids", "attention_mask"]

    padded, _ = tokenize_splits(splits, tokenizer, max_length=40, padding="max_length")
    row = padded["train"][0]
    assert len(row["input_ids"]) == 40 and sum(row["attention_mask"]) == lengths[0]
    assert row["input_ids"][lengths[0] :] == [tokenizer.pad_token_id] * (40 - lengths[0])
    with pytest.raises(ValueError, match="padding"):
        tokenize_splits(splits, tokenizer, 40, padding="batch")


# model -------------------------------------------------------------------------------------------------


def test_load_classifier_from_hfpipe_checkpoint(causal_dir):
    model = load_classifier(str(causal_dir), {0: "ham", 1: "spam"}, pad_token_id=3)
    causal = GPTForCausalLM.from_pretrained(causal_dir)
    assert isinstance(model, GPTForSequenceClassification)
    assert model.config.id2label == {0: "ham", 1: "spam"} and model.config.label2id == {"ham": 0, "spam": 1}
    assert model.config.pad_token_id == 3 and model.score.out_features == 2
    torch.testing.assert_close(model.model.blocks[1].ff.fc2.weight, causal.model.blocks[1].ff.fc2.weight)


def test_load_classifier_from_gpt2_checkpoint(tmp_path):
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    gpt2.save_pretrained(tmp_path)
    model = load_classifier(str(tmp_path), {0: "a", 1: "b", 2: "c"})
    assert isinstance(model, GPTForSequenceClassification) and model.score.out_features == 3
    torch.testing.assert_close(model.model.tok_emb.weight, gpt2.transformer.wte.weight)
    torch.testing.assert_close(
        model.model.blocks[0].att.qkv.weight, gpt2.transformer.h[0].attn.c_attn.weight.t()
    )


def test_load_classifier_rejects_non_causal_checkpoints(causal_dir, tmp_path):
    load_classifier(str(causal_dir), {0: "a", 1: "b"}).save_pretrained(tmp_path / "clf")
    with pytest.raises(ValueError, match="GPTForSequenceClassification.*not a causal LM"):
        load_classifier(str(tmp_path / "clf"), {0: "a", 1: "b"})
    # any other causal LM loads by the same rule, with a new score head on its backbone
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    tiny = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    LlamaForCausalLM(tiny).save_pretrained(tmp_path / "llama")
    clf = load_classifier(str(tmp_path / "llama"), {0: "a", 1: "b"}, pad_token_id=0)
    assert isinstance(clf, LlamaForSequenceClassification) and clf.config.num_labels == 2


def test_strategies_choose_what_trains(causal_dir):
    id2label = {0: "a", 1: "b"}
    model = prepare_model(load_classifier(str(causal_dir), id2label), "last_blocks", trainable_blocks=1)
    trainable = {
        n.split(".weight")[0].split(".bias")[0] for n, p in model.named_parameters() if p.requires_grad
    }
    assert all(n.startswith(("model.blocks.1.", "model.final_norm", "score")) for n in trainable)
    assert {"model.final_norm", "score", "model.blocks.1.att.qkv", "model.blocks.1.ff.fc2"} <= trainable
    head_only = prepare_model(load_classifier(str(causal_dir), id2label), "last_blocks", trainable_blocks=0)
    assert {n for n, p in head_only.named_parameters() if p.requires_grad} == {
        "model.final_norm.weight", "model.final_norm.bias", "score.weight", "score.bias",
    }  # fmt: skip
    full = prepare_model(load_classifier(str(causal_dir), id2label), "full")
    assert all(p.requires_grad for p in full.parameters())
    lora = prepare_model(load_classifier(str(causal_dir), id2label), "lora")
    assert isinstance(lora, PeftModel)
    assert {n.split(".")[2] for n, p in lora.named_parameters() if p.requires_grad and "lora_" not in n} == {
        "score"
    }
    with pytest.raises(ValueError, match=r"trainable_blocks must be in \[0, 2\]"):
        prepare_model(load_classifier(str(causal_dir), id2label), "last_blocks", trainable_blocks=3)
    with pytest.raises(ValueError, match="strategy must be one of"):
        prepare_model(full, "adapters")


def test_padding_does_not_change_the_prediction(causal_dir, tokenizer):
    model = load_classifier(str(causal_dir), {0: "a", 1: "b"}, pad_token_id=tokenizer.pad_token_id).eval()
    texts = ["free prize", "see you later at home tonight ok"]
    short = tokenizer(texts, padding="longest", return_tensors="pt")
    fixed = tokenizer(texts, padding="max_length", max_length=32, return_tensors="pt")
    single = torch.cat([model(**tokenizer(t, return_tensors="pt")).logits for t in texts])
    torch.testing.assert_close(model(**short).logits, single, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(**fixed).logits, single, atol=1e-5, rtol=1e-5)
