"""Every shipped YAML config (`hfpipe configs`) parses with its recipe's own dataclasses (``ARGUMENTS``): no unknown key."""

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes"))

from hfpipe.configs import packaged_configs  # noqa: E402
from hfpipe.recipe_args import parse_recipe_args  # noqa: E402

RECIPE_OF = {  # config file prefix -> the recipe that reads it
    "quickstart": "pretrain",
    "shakespeare_char": "pretrain",
    "gpt2_124m": "pretrain",
    "classifier": "finetune_classifier",
    "prepare": "prepare_data",
    "tokenizer": "train_tokenizer",
    "sft": "sft",
    "dpo": "dpo",
    "reward": "reward_model",
    "rl": "rl",
    "evaluate": "evaluate_model",
    "serve": "serve",
    "quantize": "quantize",
    "distill": "distill",
    "pipeline": "pipeline",
}
# what the README's commands add on the command line to these configs (a model the config cannot name)
REQUIRED_ON_THE_COMMAND_LINE = {
    "evaluate": ["--model_name_or_path", "m"],
    "serve": ["--model_name_or_path", "m"],
}
CONFIGS = list(packaged_configs().values())  # what ships is what is tested


def recipe_for(path: Path):
    prefix = next(k for k in RECIPE_OF if path.stem.startswith(k))
    return importlib.import_module(RECIPE_OF[prefix])


def test_every_config_belongs_to_a_recipe():
    assert CONFIGS
    for path in CONFIGS:
        assert any(path.stem.startswith(prefix) for prefix in RECIPE_OF), (
            f"{path.name}: which recipe reads it?"
        )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("fast_bf16", ["0", "1"], ids=["cpu-without-bf16", "cpu-with-bf16"])
def test_config_parses_on_both_kinds_of_cpu(path, fast_bf16, tmp_path, monkeypatch):
    """The bug of issue 8: on a CPU with fast bf16, auto bf16 must come with use_cpu, or TrainingArguments refuses."""
    monkeypatch.chdir(tmp_path)  # output_dir values are relative
    monkeypatch.setenv("HFPIPE_FAST_BF16", fast_bf16)
    if path.stem.startswith("pipeline"):  # every stage's settings through its recipe's parser
        from hfpipe.pipeline import load_pipeline, plan

        stages = plan(load_pipeline(str(path)))
        assert stages and all(s.action == "run" for s in stages)
        return
    recipe = recipe_for(path)
    extra = next((v for k, v in REQUIRED_ON_THE_COMMAND_LINE.items() if path.stem.startswith(k)), [])
    parsed = parse_recipe_args(recipe.ARGUMENTS, ["--config", str(path), *extra])
    assert len(parsed) == len(recipe.ARGUMENTS)
    assert "shared" not in path.read_text()  # users have no ../shared
    for obj in parsed:
        if hasattr(obj, "bf16") and hasattr(obj, "use_cpu"):
            assert obj.bf16 is (fast_bf16 == "1")
            assert obj.use_cpu  # no GPU here
