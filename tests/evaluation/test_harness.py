"""lm-evaluation-harness on hfpipe models: local tasks, agreement with GPT-2 and with hfpipe's own figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer, GPT2LMHeadModel

from hfpipe.evaluation.harness import TASKS_DIR, local_tasks, run_lm_eval
from hfpipe.evaluation.perplexity import evaluate_perplexity
from hfpipe.loading import convert_checkpoint, load_model_and_tokenizer

pytest.importorskip("lm_eval")
TASKS = ["hfpipe_mc", "hfpipe_bpb"]


@pytest.fixture(scope="module")
def hfpipe_model(model_dir):
    return load_model_and_tokenizer(model_dir)


@pytest.fixture(scope="module")
def hfpipe_results(hfpipe_model):
    return run_lm_eval(*hfpipe_model, TASKS)


def test_local_tasks_are_shipped():
    assert local_tasks() == ["hfpipe_bpb", "hfpipe_mc"]


def test_local_tasks_give_identical_results_for_the_gpt2_conversion(model_dir, hfpipe_results, tmp_path):
    gpt2_dir = convert_checkpoint(str(model_dir), str(tmp_path / "gpt2"), direction="to_gpt2")
    gpt2 = GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()  # transformers' own class, no hfpipe code
    gpt2_results = run_lm_eval(gpt2, AutoTokenizer.from_pretrained(gpt2_dir), TASKS)
    assert set(gpt2_results) == set(hfpipe_results)
    assert {"hfpipe_mc/acc", "hfpipe_mc/acc_norm", "hfpipe_mc/chance", "hfpipe_bpb/bits_per_byte"} <= set(
        gpt2_results
    )
    for name, value in hfpipe_results.items():
        assert gpt2_results[name] == pytest.approx(value, rel=1e-6), name
    assert hfpipe_results["hfpipe_mc/chance"] == 0.25


def test_bits_per_byte_agrees_with_lm_eval(hfpipe_model, hfpipe_results, paragraphs):
    model, tokenizer = hfpipe_model
    ours = evaluate_perplexity(model, tokenizer, paragraphs, stride=0, progress=False)
    assert ours.bits_per_byte == pytest.approx(hfpipe_results["hfpipe_bpb/bits_per_byte"], rel=0.01)


@pytest.mark.slow  # indexing lm-eval's own ~10k task files takes 20-30 s
def test_unknown_task_lists_the_local_tasks(hfpipe_model):
    with pytest.raises(ValueError, match=r"unknown lm-eval task.*'no_such_task'.*hfpipe_bpb', 'hfpipe_mc'"):
        run_lm_eval(*hfpipe_model, ["no_such_task"])


@pytest.mark.slow  # lm_eval's CLI indexes all its tasks: 30-70 s
def test_lm_eval_command_line_runs_an_hfpipe_directory(model_dir, tmp_path):
    """The README's command: lm-eval's own CLI loads the directory with trust_remote_code."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model_dir},trust_remote_code=True",
        "--include_path", str(TASKS_DIR), "--tasks", "hfpipe_mc", "--limit", "8", "--device", "cpu",
        "--output_path", str(tmp_path / "out"),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "hfpipe_mc" in run.stdout and "acc" in run.stdout
    assert list(Path(tmp_path / "out").rglob("results_*.json"))


def test_outside_a_git_checkout_nothing_reaches_the_terminal(hfpipe_model, tmp_path, monkeypatch, capfd):
    """lm-eval records the working directory's git commit with `git describe`: outside a checkout, git's
    "fatal: not a git repository" must not reach a pip user's terminal."""
    import lm_eval.evaluator

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    original = lm_eval.evaluator.get_git_commit_hash
    capfd.readouterr()
    run_lm_eval(*hfpipe_model, ["hfpipe_bpb"], limit=2)
    assert "fatal" not in capfd.readouterr().err
    assert lm_eval.evaluator.get_git_commit_hash is original  # put back
