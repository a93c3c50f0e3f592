"""What a user types wrong ends in one readable line and a non-zero exit, not a traceback (issue 8)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfpipe.recipe_args import run_recipe

REPO = Path(__file__).resolve().parents[2]
from hfpipe.cli import convert_gpt2, finetune_classifier, pretrain  # noqa: E402

CASES = {
    "not a number in the YAML": (
        ["--config", "bad.yaml"],
        "error: --learning_rate: invalid float value: 'abc'",
    ),
    "batch size 0": (
        ["--per_device_train_batch_size", "0"],
        "per_device_train_batch_size must be at least 1, got 0",
    ),
    "negative learning rate": (["--learning_rate=-1e-3"], "learning_rate must be positive, got -0.001"),
    "output_dir is a file": (["--output_dir", "afile"], "output_dir 'afile' is a file"),
    "mistyped tokenizer path": (["--tokenizer_name_or_path", "out/tokenizr"], "did you mean 'out/tokenizer'"),
    "bf16 with fp16": (["--bf16", "true", "--fp16", "true"], "bf16 and fp16 are both set"),
    "unknown key": (["--config", "typo.yaml"], "unknown key(s) in typo.yaml: 'learning_rte'"),
    "unknown architecture": (["--architecture", "llama2"], "unknown architecture 'llama2'; choose one of"),
    "kv heads not dividing the heads": (
        ["--architecture", "llama", "--n_kv_heads", "3"],
        "GPTConfig.n_kv_heads (3) must divide n_heads (4)",
    ),
    "rope with an odd head size": (
        ["--architecture", "nanochat", "--emb_dim", "36"],
        "GPTConfig.position 'rope' needs an even head size, got emb_dim / n_heads = 9",
    ),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("learning_rate: abc\n")
    (tmp_path / "typo.yaml").write_text("learning_rte: 0.1\n")
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "out" / "tokenizer").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HFPIPE_DEBUG", raising=False)
    return tmp_path


def one_line_error(main, args, capsys) -> str:
    """Run a recipe's ``main`` the way its ``__main__`` does; return its single ``error:`` line."""
    with pytest.raises(SystemExit) as exit_:
        run_recipe(lambda: main(args))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err and "usage:" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case", CASES)
def test_pretrain_user_error_is_one_line(case, workdir, capsys):
    args, message = CASES[case]
    assert message in one_line_error(pretrain.main, ["--output_dir", "run", *args], capsys)
    assert not (workdir / "run").exists()  # nothing written for a run that could not start


def test_classifier_and_converter_errors_are_one_line(workdir, capsys):
    args = ["--model_name_or_path", "./nowhere", "--dataset_name", "x.tsv", "--output_dir", "c"]
    assert "data file 'x.tsv' does not exist" in one_line_error(finetune_classifier.main, args, capsys)
    (workdir / "x.tsv").write_text("".join(f"{'spam' if i % 3 else 'ham'}\tmessage {i}\n" for i in range(60)))
    args += ["--column_names", "label", "text"]
    assert "model './nowhere' does not exist" in one_line_error(finetune_classifier.main, args, capsys)
    args = ["--model_name_or_path", "./nowhere", "--output_dir", "c"]
    assert "model './nowhere' does not exist" in one_line_error(convert_gpt2.main, args, capsys)


def test_the_command_line_prints_one_line_and_debug_shows_the_traceback(workdir):
    """The real thing, once: the recipe as a user runs it, then with HFPIPE_DEBUG=1."""
    cmd = [
        sys.executable,
        str(REPO / "recipes" / "pretrain.py"),
        "--output_dir",
        "run",
        "--config",
        "bad.yaml",
    ]
    env = {k: v for k, v in os.environ.items() if k != "HFPIPE_DEBUG"}
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[0] == (
        "error: --learning_rate: invalid float value: 'abc' (run with --help for the list of settings)"
    ), result.stderr  # nothing printed before it: no import-time noise either
    result = subprocess.run(
        cmd, capture_output=True, text=True, cwd=workdir, env={**env, "HFPIPE_DEBUG": "1"}, timeout=300
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "invalid float value" in result.stderr


@pytest.fixture
def saved_models(tmp_path):
    """A causal GPT and a classifier of the same shape, with a tokenizer, saved as the recipes save them."""
    import torch

    from hfpipe import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
    from hfpipe.tokenization import train_bpe_tokenizer

    tok = train_bpe_tokenizer(["say red", "say blue please"] * 20, vocab_size=280, model_max_length=64)
    config = dict(vocab_size=len(tok), context_length=64, emb_dim=32, n_heads=2, n_layers=1,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    for name, model in (
        ("lm", GPTForCausalLM(GPTConfig(**config))),
        ("spam", GPTForSequenceClassification(GPTConfig(**config))),
    ):
        model.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("recipe", ["sft", "dpo", "rl"])
def test_a_classifier_is_refused_as_a_language_model_start(recipe, saved_models, capsys, monkeypatch):
    import importlib
    import json

    monkeypatch.chdir(saved_models)
    records = [
        {"instruction": "Say red.", "input": "", "output": "red", "chosen": "red", "rejected": "blue"}
    ] * 20
    (saved_models / "data.json").write_text(json.dumps(records))
    main = importlib.import_module(f"hfpipe.cli.{recipe}").main
    args = [
        "--model_name_or_path",
        "spam",
        "--dataset_name",
        "data.json",
        "--output_dir",
        "out",
        "--report_to",
        "none",
    ]
    if recipe == "rl":
        args += ["--reward_functions", "ends_with_eos"]
    line = one_line_error(main, args, capsys)
    assert (
        "spam is a sequence classifier (GPTForSequenceClassification): it has no trained language-model head"
        in line
    )
    assert not (saved_models / "out").exists()


@pytest.mark.parametrize(("content", "message"), [
    ('[{"instruction": "a", "output": "b"},\n {"instruction": "c" "output": "d"}]', "is not valid JSON at line 2, column 22"),
    ("[]", "is an empty list"),
    ('[{"instruction": "a", "output": "b"}, "c"]', "record 2 is not an object but str 'c'"),
])  # fmt: skip
def test_bad_json_data_is_one_line_naming_the_file(content, message, saved_models, capsys, monkeypatch):
    from hfpipe.cli import sft

    monkeypatch.chdir(saved_models)
    (saved_models / "data.json").write_text(content)
    line = one_line_error(
        sft.main, ["--model_name_or_path", "lm", "--dataset_name", "data.json", "--output_dir", "o"], capsys
    )
    assert line.startswith("error: data.json") and message in line
