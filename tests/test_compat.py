"""hfpipe.compat: the transformers API that moved within 5.x — cache name, renamed training keys, tested range."""

import logging
import os

import pytest
import transformers
from transformers import TrainingArguments

from hfpipe.compat import TRANSFORMERS_FLOOR, cache_name, training_key_translations, warn_if_below_floor
from hfpipe.recipe_args import ConfigError, parse_recipe_args

NEW = {"train_sampling_strategy", "output_dir"}  # transformers 5.2 and later
OLD = {"group_by_length", "output_dir"}  # transformers 5.0 and 5.1


def test_cache_name_follows_the_release():
    before_rename = tuple(int(p) for p in transformers.__version__.split(".")[:2]) < (5, 24)
    assert cache_name() == ("past_key_values" if before_rename else "cache")


def test_renamed_training_keys_translate_both_ways():
    assert training_key_translations(NEW)["group_by_length"](True) == {
        "train_sampling_strategy": "group_by_length"
    }
    assert training_key_translations(NEW)["group_by_length"]("false") == {"train_sampling_strategy": "random"}
    old = training_key_translations(OLD)["train_sampling_strategy"]
    assert old("group_by_length") == {"group_by_length": True} and old("random") == {"group_by_length": False}
    with pytest.raises(ValueError, match="needs transformers 5.2"):
        old("sequential")
    assert training_key_translations(NEW | OLD) == {}


@pytest.mark.parametrize("spelling", ["yaml-new", "yaml-old", "cli-new", "cli-old"])
def test_either_spelling_parses_on_the_installed_release(tmp_path, spelling):
    new, old = "train_sampling_strategy: group_by_length", "group_by_length: true"
    yaml_line = {"yaml-new": new, "yaml-old": old}.get(spelling, "")
    (tmp_path / "c.yaml").write_text(f"output_dir: {tmp_path / 'out'}\nuse_cpu: true\n{yaml_line}\n")
    cli = {"cli-new": ["--train_sampling_strategy", "group_by_length"], "cli-old": ["--group_by_length=true"]}
    (args,) = parse_recipe_args(
        [TrainingArguments], ["--config", str(tmp_path / "c.yaml"), *cli.get(spelling, [])]
    )
    grouped = getattr(args, "train_sampling_strategy", None) == "group_by_length" or getattr(
        args, "group_by_length", False
    )
    assert grouped, f"transformers {transformers.__version__}: {spelling} did not group by length"


def test_unknown_key_is_still_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("output_dir: x\ngroup_by_lenght: true\n")
    with pytest.raises(ConfigError, match="group_by_lenght"):
        parse_recipe_args([TrainingArguments], ["--config", str(tmp_path / "c.yaml")])


def test_one_warning_below_the_floor_and_none_for_newer_releases(caplog):
    caplog.set_level(logging.WARNING, logger="hfpipe.compat")
    for newer in (TRANSFORMERS_FLOOR, "5.25.0", "5.99.1", "5.30.0.dev0", transformers.__version__):
        assert not warn_if_below_floor(newer), newer
    assert not caplog.records
    assert warn_if_below_floor("4.57.1")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and f">= {TRANSFORMERS_FLOOR}" in messages[0], messages


def test_plain_help_prints_no_warning():
    """`hfpipe --help` with whatever release pip resolved today: nothing on stderr."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "hfpipe", "--help"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


LOAD_A_MODEL = """
import tempfile
{hfpipe}
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
with tempfile.TemporaryDirectory() as d:
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=8)).save_pretrained(d)
    AutoModelForCausalLM.from_pretrained(d)
"""
TORCHAO_NOISE = ("Failed to load", "register_constant", "_pytree")


def test_a_model_load_prints_no_torchao_or_pytree_lines():
    """torchao's PyPI wheel carries CUDA kernels (``_C_mxfp8``, ``_C_cutlass_90a``) that a CPU torch cannot load, and
    registers Enums in a way torch 2.13 deprecates; transformers imports it with any model class. In a process that
    imported hfpipe, none of those lines appears."""
    import subprocess
    import sys

    def stderr(hfpipe: str) -> str:
        proc = subprocess.run([sys.executable, "-c", LOAD_A_MODEL.format(hfpipe=hfpipe)], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"})  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stderr

    without = stderr("")  # plain transformers: the lines this test is about
    if not any(n in without for n in TORCHAO_NOISE):
        pytest.skip(
            "no torchao, or one that loads cleanly here (a CPU build, a GPU machine): nothing to silence"
        )
    with_hfpipe = stderr("import hfpipe")
    assert not [line for line in with_hfpipe.splitlines() if any(n in line for n in TORCHAO_NOISE)], (
        with_hfpipe
    )


def test_import_hfpipe_checks_the_floor_without_importing_transformers():
    import subprocess
    import sys

    code = "import sys, hfpipe; print('transformers' in sys.modules, 'torch' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.split() == ["False", "False"]
