"""recipes/evaluate_model.py end to end: two checkpoints, one table (Markdown, JSON, PNG)."""

import json
from pathlib import Path

import pytest
import torch

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.recipe_args import run_recipe
from hfpipe.tokenization import train_bpe_tokenizer

from ..conftest import import_script

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "evaluate_model.py"
TEXT = "The river rose in the spring and the farmers moved the sheep to the hill. " * 6


def _main():
    return import_script("recipes/evaluate_model.py", "evaluate_model_recipe").main


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    tok = train_bpe_tokenizer([TEXT] * 3, vocab_size=300)
    dirs = []
    for seed, name in ((0, "pretrain"), (1, "sft")):
        torch.manual_seed(seed)
        config = GPTConfig(vocab_size=len(tok), context_length=32, emb_dim=32, n_heads=2, n_layers=2,
                           eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)  # fmt: skip
        GPTForCausalLM(config).save_pretrained(root / name)
        tok.save_pretrained(root / name)
        dirs.append(str(root / name))
    (root / "eval.txt").write_text(TEXT.replace(". ", ".\n\n"))
    return root, dirs


def test_two_checkpoints_write_one_table(checkpoints, tmp_path):
    pytest.importorskip("lm_eval")
    root, dirs = checkpoints
    out = tmp_path / "eval"
    paths = _main()([
        "--model_name_or_path", *dirs, "--dataset_name", str(root / "eval.txt"), "--sample_by", "paragraph",
        "--stride", "0", "--lm_eval_tasks", "hfpipe_mc", "--lm_eval_limit", "4", "--output_dir", str(out),
        "--progress", "false",
    ])  # fmt: skip
    table = json.loads((out / "table.json").read_text())
    assert [r["stage"] for r in table["rows"]] == ["pretrain", "sft"]
    assert {"perplexity", "bits_per_byte", "hfpipe_mc/acc", "hfpipe_mc/chance"} <= set(table["columns"])
    per_checkpoint = [json.loads((out / s / "results.json").read_text()) for s in ("pretrain", "sft")]
    assert [r["metrics"] for r in per_checkpoint] == [r["metrics"] for r in table["rows"]]
    assert per_checkpoint[0]["metrics"]["perplexity"] != per_checkpoint[1]["metrics"]["perplexity"]
    assert len((out / "table.md").read_text().splitlines()) == 4  # header, separator, 2 rows
    assert paths["png"] == out / "table.png" and (out / "table.png").read_bytes()[:4] == b"\x89PNG"

    # the table again from the existing outputs, with no model loaded
    again = _main()(
        ["--results_files", str(out / "pretrain"), str(out / "sft"), "--output_dir", str(tmp_path / "t2")]
    )
    assert json.loads(again["json"].read_text())["rows"] == table["rows"]


@pytest.mark.parametrize(
    "argv,message",
    [
        ([], "nothing to evaluate"),
        (["--model_name_or_path", "./no/such/dir"], "does not exist"),
        (["--model_name_or_path", "m", "--judge_responses", "r.json"], "needs judge_url"),
    ],
)
def test_user_errors_end_in_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_recipe(lambda: _main()([*argv, "--output_dir", str(tmp_path / "out")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
