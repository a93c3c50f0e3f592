"""``hfpipe env``: the versions, machine and bf16 support a bug report needs."""

import platform
from importlib import metadata

import pytest

import hfpipe
from hfpipe.cli import main
from hfpipe.cli.env import environment, extras
from hfpipe.cli.env import main as env_main


def test_env_prints_the_stack_python_machine_and_bf16(capsys, monkeypatch):
    monkeypatch.setenv("HFPIPE_FAST_BF16", "0")
    main(["env"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"- hfpipe: {hfpipe.__version__}"
    for name in ("torch", "transformers", "tokenizers", "datasets", "accelerate", "peft", "trl", "huggingface_hub",
                 "safetensors"):  # fmt: skip
        assert f"- {name}: {metadata.version(name)}" in lines, name
    assert f"- Python: {platform.python_version()} ({platform.python_implementation()})" in lines
    assert any(line.startswith("- CPU: ") and " cores" in line for line in lines)
    assert any(line.startswith("- GPU: ") for line in lines)
    assert (
        "- bf16: not native (HFPIPE_FAST_BF16=0; emulated ~4x slower than fp32): off by default, --bf16 true forces it"
        in lines
    )
    monkeypatch.setenv("HFPIPE_FAST_BF16", "1")
    assert "- bf16: native (HFPIPE_FAST_BF16=1): on by default" in environment().splitlines()


def test_env_names_each_optional_extra_and_what_of_it_is_installed():
    found = extras()
    assert {"eval", "serve", "quantize", "gguf", "datatrove"} <= set(found) and "test" not in found
    assert found["quantize"] == {"torchao": metadata.version("torchao")}
    text = environment()
    assert f"- extra [quantize]: torchao {metadata.version('torchao')}" in text.splitlines()


def test_env_takes_no_settings():
    with pytest.raises(ValueError, match="hfpipe env takes no settings, got --verbose"):
        env_main(["--verbose"])
