"""Every shipped YAML config parses with its recipe's dataclasses: no unknown or misspelt key."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes"))

import finetune_classifier  # noqa: E402
import prepare_data  # noqa: E402
import pretrain  # noqa: E402
import train_tokenizer  # noqa: E402

from hfpipe.recipe_args import parse_recipe_args  # noqa: E402

RECIPE_OF = {  # config file prefix -> the dataclasses its recipe parses
    "quickstart": [
        pretrain.ModelArguments,
        pretrain.DataArguments,
        pretrain.TokenizerArguments,
        pretrain.PretrainConfig,
    ],
    "shakespeare_char": [
        pretrain.ModelArguments,
        pretrain.DataArguments,
        pretrain.TokenizerArguments,
        pretrain.PretrainConfig,
    ],
    "gpt2_124m": [
        pretrain.ModelArguments,
        pretrain.DataArguments,
        pretrain.TokenizerArguments,
        pretrain.PretrainConfig,
    ],
    "classifier": [
        finetune_classifier.ClassifierArguments,
        finetune_classifier.LoraArguments,
        finetune_classifier.TrainingArguments,
    ],
    "prepare": [
        prepare_data.DataArguments,
        prepare_data.TokenizerArguments,
        prepare_data.PrepareOutputArguments,
    ],
    "tokenizer": [
        train_tokenizer.DataArguments,
        train_tokenizer.TokenizerArguments,
        train_tokenizer.TokenizerOutputArguments,
    ],
}
CONFIGS = sorted((REPO / "recipes" / "configs").glob("*.yaml"))


def test_every_config_belongs_to_a_recipe():
    assert CONFIGS
    for path in CONFIGS:
        assert any(path.stem.startswith(prefix) for prefix in RECIPE_OF), (
            f"{path.name}: which recipe reads it?"
        )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # output_dir values are relative
    classes = next(v for k, v in RECIPE_OF.items() if path.stem.startswith(k))
    parsed = parse_recipe_args(classes, ["--config", str(path)])
    assert len(parsed) == len(classes)
    assert "shared" not in path.read_text()  # users have no ../shared
