"""recipes/convert_gpt2.py end to end on a tiny random GPT-2 with the real GPT-2 tokenizer (no Hub access)."""

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2Tokenizer
from transformers.utils import logging as hf_logging

from hfpipe import GPTForCausalLM

from ..conftest import import_script

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "convert_gpt2.py"


@pytest.fixture(autouse=True)
def one_thread_and_log_level():
    """One torch thread (tiny models only lose to thread sync); restore the log level the recipe raises."""
    threads, verbosity = torch.get_num_threads(), hf_logging.get_verbosity()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    hf_logging.set_verbosity(verbosity)


def _recipe_main():
    return import_script("recipes/convert_gpt2.py", "convert_gpt2_recipe").main


@pytest.fixture(scope="module")
def gpt2_dir(shared_data, tmp_path_factory) -> Path:
    """A tiny random GPT2LMHeadModel (GPT-2's 50257-token vocabulary) saved with the GPT-2 tokenizer."""
    tok_dir = shared_data / "gpt2-tokenizer"
    tokenizer = GPT2Tokenizer(vocab=str(tok_dir / "encoder.json"), merges=str(tok_dir / "vocab.bpe"))
    assert len(tokenizer) == 50257
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=4)).eval()
    path = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def text_ids(shared_data, gpt2_dir) -> torch.Tensor:
    text = (shared_data / "the-verdict.txt").read_text()[:300]
    return AutoTokenizer.from_pretrained(gpt2_dir)(text, return_tensors="pt").input_ids[:, :64]


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_cli_to_hfpipe_then_back(gpt2_dir, text_ids, tmp_path, monkeypatch, capsys):
    ours_dir, back_dir = tmp_path / "ours", tmp_path / "back"
    # as `python recipes/convert_gpt2.py ...` (run as __main__, in this process to save an interpreter start)
    argv = [str(RECIPE), "--model_name_or_path", str(gpt2_dir), "--output_dir", str(ours_dir)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(RECIPE), run_name="__main__")
    assert f"converted model written to {ours_dir}" in capsys.readouterr().out
    files = {p.name for p in ours_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "modeling_gpt.py",
        "configuration_gpt.py",
        "tokenizer.json",
    } <= files
    assert json.loads((ours_dir / "config.json").read_text())["model_type"] == "hfpipe_gpt"

    reference = _logits(GPT2LMHeadModel.from_pretrained(gpt2_dir), text_ids)
    ours = GPTForCausalLM.from_pretrained(ours_dir)
    torch.testing.assert_close(_logits(ours, text_ids), reference, atol=1e-4, rtol=1e-4)
    tokenizer = AutoTokenizer.from_pretrained(ours_dir)
    assert tokenizer.decode(text_ids[0]).startswith("I HAD always thought Jack Gisburn")
    assert torch.equal(tokenizer(tokenizer.decode(text_ids[0]), return_tensors="pt").input_ids, text_ids)

    # and back, through main() with the same flags
    path = _recipe_main()(
        ["--model_name_or_path", str(ours_dir), "--output_dir", str(back_dir), "--direction", "to_gpt2"]
    )
    assert path == back_dir
    back = GPT2LMHeadModel.from_pretrained(back_dir)
    torch.testing.assert_close(_logits(back, text_ids), reference, atol=1e-4, rtol=1e-4)
    assert AutoTokenizer.from_pretrained(back_dir).vocab_size == 50257
    original = GPT2LMHeadModel.from_pretrained(gpt2_dir).state_dict()
    for name, tensor in back.state_dict().items():
        assert torch.equal(tensor, original[name]), name


def test_recipe_rejects_wrong_direction(gpt2_dir, tmp_path):
    main = _recipe_main()
    with pytest.raises(ValueError, match="not an hfpipe GPT checkpoint"):
        main(
            [
                "--model_name_or_path",
                str(gpt2_dir),
                "--output_dir",
                str(tmp_path / "x"),
                "--direction",
                "to_gpt2",
            ]
        )
    with pytest.raises(ValueError, match="direction must be"):
        main(
            ["--model_name_or_path", str(gpt2_dir), "--output_dir", str(tmp_path / "x"), "--direction", "up"]
        )
    assert not (tmp_path / "x").exists()
