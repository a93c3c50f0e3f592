"""Every ``recipes/*.py`` runs as a script, reading its arguments from the command line (issue 20: the pipeline
script once parsed an empty list instead of ``sys.argv``), from a directory outside the checkout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (REPO / "recipes").glob("*.py") if p.name != "__init__.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
# Each command run as `python script args...` would, in one interpreter (one start-up instead of 17):
# the script as __main__, its folder first on sys.path, its arguments in sys.argv; what it printed and its exit.
RUNNER = r"""
import contextlib, io, json, os, runpy, sys
commands, results = json.loads(sys.argv[1]), []
for script, *args in commands:
    sys.argv, sys.path[0], out, code = [script, *args], os.path.dirname(script), io.StringIO(), 0
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as done:
            code = done.code or 0
    results.append({"script": script, "code": code, "out": out.getvalue()})
print(json.dumps(results))
"""


def run_scripts(commands: list[list[str]], cwd: Path) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(commands)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def alpaca_file(path: Path) -> Path:
    records = [{"instruction": f"Say {w}.", "input": "", "output": w} for w in "one two three four".split()]
    path.write_text(json.dumps(records * 5))
    return path


def preference_file(path: Path) -> Path:
    words = "one two three four".split()
    records = [{"instruction": f"Say {w}.", "input": "", "chosen": w, "rejected": f"not {w}"} for w in words]
    path.write_text(json.dumps(records * 10))
    return path


def test_every_script_shows_its_help_and_the_pipeline_script_plans(tmp_path):
    data = alpaca_file(tmp_path / "instructions.json")
    preferences = preference_file(tmp_path / "preferences.json")
    commands = [[str(script), "--help"] for script in SCRIPTS]
    commands.append([str(REPO / "recipes" / "pipeline.py"), "--config", "pipeline_cpu", "--dry_run",
                     "--instruction_data", str(data), "--preference_data", str(preferences)])  # fmt: skip
    results = run_scripts(commands, cwd=tmp_path)
    for script, result in zip(SCRIPTS, results):
        assert result["code"] == 0, result
        assert result["out"].startswith(f"usage: {script.name}"), result
    plan = results[-1]
    assert plan["code"] == 0, plan
    assert plan["out"].startswith("pipeline plan:") and "export_gguf" in plan["out"]
    assert not (tmp_path / "outputs").exists()  # a dry run writes nothing


@pytest.mark.slow  # one interpreter per script: about 5 s each on a quiet 2-core machine
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_each_script_in_its_own_process_shows_its_help(script, tmp_path):
    proc = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"usage: {script.name}")


def test_train_tokenizer_script_end_to_end(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"Return the {w} of the list, or None when it is empty.\n" for w in range(300)))
    out = tmp_path / "tok"
    cmd = [sys.executable, str(REPO / "recipes" / "train_tokenizer.py"), "--config", "tokenizer_bpe",
           "--dataset_name", str(corpus), "--vocab_size", "300", "--min_frequency", "1", "--output_dir", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "saved 300-token tokenizer" in proc.stdout
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == 300 and tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.decode(tokenizer("Return the list").input_ids) == "Return the list"
