import json
from pathlib import Path

import pytest
from trl import ScriptArguments

from hfpipe.data import DataArguments, TokenShardDataset, build_lm_datasets, load_packed_dataset
from hfpipe.loading import load_tokenizer

from ..conftest import import_script

ROOT = Path(__file__).resolve().parents[2]


def test_prepare_then_train_loads(shared_data, tmp_path):
    out = tmp_path / "packed"
    import_script("recipes/prepare_data.py").main([
        "--config", str(ROOT / "recipes/configs/prepare_clm.yaml"),
        "--dataset_name", str(shared_data / "sms_spam_collection.tsv"), "--column_names", "label", "text",
        "--tokenizer_name_or_path", str(shared_data / "gpt2-tokenizer"), "--block_size", "64",
        "--output_dir", str(out),
    ])  # fmt: skip
    meta = json.loads((out / "hfpipe_data.json").read_text())
    assert meta["block_size"] == 64 and meta["vocab_size"] == 50258
    assert meta["format"] == "hfpipe-token-shards" and meta["dtype"] == "uint16"
    steps = {s["name"]: s for s in meta["cleaning"]}
    assert steps["exact dedup"]["docs_removed"] > 0 and steps["near dedup"]["docs_removed"] > 0
    for name in ("input", "normalize", "length", "exact dedup", "near dedup", "split"):  # every step is timed
        assert steps[name]["seconds"] >= 0 and steps[name]["docs_per_s"] > 0, name
    packed = steps["tokenize+pack train"]
    assert (
        packed["tokens_per_s"] > 0
        and packed["docs_left"]
        == steps["split"]["docs_left"] - (steps["tokenize+pack validation"]["docs_left"])
    )
    train = TokenShardDataset(out / "train")
    assert len(train) == meta["blocks"]["train"] and train[0]["input_ids"].shape == (64,)
    # 2 bytes per token: the shards hold exactly the blocks, no labels
    assert sum(f.stat().st_size for f in (out / "train").glob("shard-*.bin")) == len(train) * 64 * 2
    tok = load_tokenizer(shared_data / "gpt2-tokenizer")
    again = build_lm_datasets(
        ScriptArguments(), DataArguments(packed_dataset_path=str(out), block_size=64), tok, max_context=1024
    )
    assert len(again["train"]) == meta["blocks"]["train"]
    with pytest.raises(ValueError, match="more than the model's context"):
        build_lm_datasets(ScriptArguments(), DataArguments(packed_dataset_path=str(out)), tok, max_context=32)


def test_streaming_prepare(tmp_path, shared_data):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"body": f"document number {i} " * 20}) + "\n" for i in range(100)))
    out = tmp_path / "packed"
    import_script("recipes/prepare_data.py").main([
        "--dataset_name", str(corpus), "--text_column", "body", "--dataset_streaming", "true", "--near_dedup", "false",
        "--tokenizer_name_or_path", str(shared_data / "gpt2-tokenizer"), "--block_size", "32", "--output_dir", str(out),
    ])  # fmt: skip
    dsd = load_packed_dataset(out)
    assert len(dsd["train"]) > len(dsd["validation"]) > 0


def test_errors_leave_nothing(tmp_path, shared_data):
    out = tmp_path / "packed"
    recipe = import_script("recipes/prepare_data.py")
    tok = ["--tokenizer_name_or_path", str(shared_data / "gpt2-tokenizer"), "--output_dir", str(out)]
    with pytest.raises(ValueError, match="block_size=2048 is larger than the model's context"):
        recipe.main(["--dataset_name", str(shared_data / "the-verdict.txt"), "--block_size", "2048", *tok])
    short = tmp_path / "short.txt"
    short.write_text("hi\n")
    with pytest.raises(ValueError, match="short.txt: no documents left after cleaning step 'length'"):
        recipe.main(["--dataset_name", str(short), "--min_chars", "10", *tok])
    with pytest.raises(ValueError, match="tokenizer_name_or_path"):
        recipe.main(["--dataset_name", str(short)])
    assert not out.exists() and not list(tmp_path.glob(".packed*"))
