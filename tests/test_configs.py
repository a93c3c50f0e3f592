"""hfpipe.configs: the packaged configs, and ``--config NAME`` resolving a local file first, then a packaged one,
for every recipe's parser and for a pipeline and its stages."""

from pathlib import Path

import pytest
import yaml

from hfpipe.cli.pretrain import ARGUMENTS as PRETRAIN
from hfpipe.configs import ConfigError, describe, packaged_configs, resolve_config
from hfpipe.pipeline import load_pipeline, plan
from hfpipe.recipe_args import parse_recipe_args

REPO = Path(__file__).resolve().parents[1]


def test_the_packaged_configs_are_the_recipes_configs_each_with_a_description():
    shipped = packaged_configs()
    assert sorted(shipped) == sorted(p.stem for p in (REPO / "recipes" / "configs").glob("*.yaml"))
    assert {"quickstart", "pipeline_cpu", "sft_alpaca"} <= set(shipped)
    for name, path in shipped.items():
        text = describe(path)
        assert text.endswith(".") and 10 < len(text) and "python " not in text, (name, text)
    assert describe(shipped["quickstart"]) == (
        "Quickstart: a small GPT pretrained in about 5 minutes on a laptop CPU."
    )


def test_describe_takes_the_first_sentence_of_the_opening_comment(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "# A run (ch. 7, e.g. on a laptop): fast. More here\n# and here.\n#   python x.py\nkey: 1\n"
    )
    assert describe(path) == "A run (ch. 7, e.g. on a laptop): fast."
    path.write_text("key: 1\n")
    assert describe(path) == ""


@pytest.mark.parametrize("name", ["quickstart", "quickstart.yaml"])
def test_a_bare_name_is_a_packaged_config(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config(name) == packaged_configs()["quickstart"]


@pytest.mark.parametrize("name", ["quickstart", "quickstart.yaml"])
def test_a_local_file_wins_over_the_packaged_one(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart.yaml").write_text("max_steps: 3\n")
    assert resolve_config(name) == tmp_path / "quickstart.yaml"
    *_, training = parse_recipe_args(PRETRAIN, ["--config", name])
    assert training.max_steps == 3


def test_a_recipe_reads_a_packaged_config_by_name_outside_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = yaml.safe_load(packaged_configs()["quickstart"].read_text())
    *_, training = parse_recipe_args(PRETRAIN, ["--config", "quickstart"])
    assert training.max_steps == expected["max_steps"] and training.output_dir == expected["output_dir"]


def test_a_missing_config_names_what_and_where_and_the_packaged_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        parse_recipe_args(PRETRAIN, ["--config", "quikstart"])
    message = str(err.value)
    assert message.startswith(f"config 'quikstart' not found: no quikstart or quikstart.yaml in {tmp_path}, and "
                              "hfpipe ships no config of that name (hfpipe's configs: ")  # fmt: skip
    assert all(name in message for name in packaged_configs()) and "\n" not in message
    # a path is never replaced by a packaged file behind the user's back, but the error points at it
    with pytest.raises(ConfigError, match=r"no quickstart.yaml in .*recipes/configs; hfpipe ships one of that name: "
                                          r"use 'quickstart'"):  # fmt: skip
        resolve_config("recipes/configs/quickstart.yaml")


def test_a_packaged_pipeline_plans_with_its_packaged_stage_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_pipeline("pipeline_cpu", {"output_dir": str(tmp_path / "out")})
    stages = {s.name: s for s in plan(spec)}
    config_of = lambda stage: Path(stage.args[stage.args.index("--config") + 1])  # noqa: E731
    assert config_of(stages["pretrain"]) == packaged_configs()["quickstart"]
    assert config_of(stages["sft"]) == packaged_configs()["sft_alpaca"]


def test_a_stage_config_beside_the_pipeline_wins_over_the_packaged_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    pipeline = tmp_path / "mine" / "p.yaml"
    stages = {
        "pretrain": {"config": "quickstart.yaml"},
        "sft": {"config": "sft_alpaca", "dataset_name": "d.json"},
    }
    pipeline.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), "stages": stages}))
    (tmp_path / "mine" / "quickstart.yaml").write_text("max_steps: 3\n")
    planned = {s.name: s for s in plan(load_pipeline(str(pipeline)))}
    assert planned["pretrain"].args[:2] == ["--config", str(tmp_path / "mine" / "quickstart.yaml")]
    assert planned["sft"].args[:2] == ["--config", str(packaged_configs()["sft_alpaca"])]


def test_a_missing_pipeline_config_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^pipeline config 'pipeline_cpy' not found: no pipeline_cpy or "
                                          r"pipeline_cpy.yaml in .*pipeline_cpu"):  # fmt: skip
        load_pipeline("pipeline_cpy")
