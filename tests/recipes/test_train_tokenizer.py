from pathlib import Path

import pytest
from transformers import AutoTokenizer

from hfpipe.recipe_args import ConfigError

from ..conftest import import_script

ROOT = Path(__file__).resolve().parents[2]
recipe = import_script("recipes/train_tokenizer.py")


def test_bpe_from_config(shared_data, tmp_path):
    out = tmp_path / "tok"
    tok, bpt = recipe.main(["--config", str(ROOT / "recipes/configs/tokenizer_bpe.yaml"),
                            "--dataset_name", str(shared_data / "tinyshakespeare.txt"), "--sample_by", "paragraph",
                            "--vocab_size", "1000", "--extra_special_tokens", "<BOS>", "<MASK>",
                            "--output_dir", str(out)])  # fmt: skip
    loaded = AutoTokenizer.from_pretrained(out)
    assert len(loaded) == 1000 and loaded.model_max_length == 1024 and 2.0 < bpt < 4.0
    assert loaded.eos_token == "<|endoftext|>" and loaded.pad_token == "<|pad|>"
    assert loaded.convert_tokens_to_ids("<MASK>") == 3
    text = "Wherefore art thou Romeo? 🌹"
    assert loaded.decode(loaded(text)["input_ids"]) == text


def test_char_level_from_config(shared_data, tmp_path):
    tok, bpt = recipe.main(["--config", str(ROOT / "recipes/configs/tokenizer_char.yaml"),
                            "--dataset_name", str(shared_data / "tinyshakespeare.txt"), "--output_dir", str(tmp_path / "c")])  # fmt: skip
    assert len(AutoTokenizer.from_pretrained(tmp_path / "c")) == 65 + 3 and bpt == pytest.approx(1.0)


def test_existing_gpt2(shared_data, tmp_path):
    tok, bpt = recipe.main(["--tokenizer_name_or_path", str(shared_data / "gpt2-tokenizer"),
                            "--dataset_name", str(shared_data / "the-verdict.txt"), "--output_dir", str(tmp_path / "g")])  # fmt: skip
    assert AutoTokenizer.from_pretrained(tmp_path / "g")("Hello, I am")["input_ids"] == [15496, 11, 314, 716]
    assert 3.5 < bpt < 4.5


def test_bad_inputs_leave_nothing(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("some text to train on\n" * 50)
    out = tmp_path / "tok"
    with pytest.raises(ValueError, match="vocab_size=200 is smaller than the byte alphabet"):
        recipe.main(["--dataset_name", str(corpus), "--vocab_size", "200", "--output_dir", str(out)])
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        recipe.main(["--dataset_name", str(tmp_path / "nope.txt"), "--output_dir", str(out)])
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("vocab_sise: 300\n")
    with pytest.raises(ConfigError, match="vocab_sise.*vocab_size"):
        recipe.main(["--config", str(cfg)])
    cfg.write_text("dataset_config_name: sample-10BT\n")  # the key before trl's ScriptArguments
    with pytest.raises(ConfigError, match="'dataset_config_name' \\(did you mean 'dataset_config'\\?\\)"):
        recipe.main(["--config", str(cfg)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "c.txt"]
