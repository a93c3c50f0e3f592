"""hfpipe.preflight: a pipeline with bad input stops in seconds with one line, before its first stage runs.

Every case goes through the real `hfpipe pipeline` command and asserts that nothing ran: no output_dir, so no
tokenizer and no checkpoint.
"""

import json
import re
import subprocess
import sys
import time

import pytest
import yaml

from hfpipe.cli import main as hfpipe

PAIR = {"instruction": "Name a colour.", "input": "", "chosen": "Blue.", "rejected": "blue"}
RECORD = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
SECONDS = 20  # start-up time on a loaded 2-core machine; a first stage would take minutes


def write_json(path, value):
    path.write_text(json.dumps(value) if not isinstance(value, str) else value)
    return str(path)


@pytest.fixture
def chain(tmp_path):
    """A pipeline whose data is good: pretrain (tokenizer trained first) -> SFT -> DPO."""
    instructions = write_json(tmp_path / "instructions.json", [RECORD] * 20)
    pairs = write_json(tmp_path / "pairs.json", [PAIR] * 20)
    spec = {"output_dir": str(tmp_path / "out"), "instruction_data": instructions, "preference_data": pairs,
            "stages": {"pretrain": {"model_preset": "tiny", "max_steps": 2, "report_to": "none"},
                       "sft": {"dataset_name": "{instruction_data}"},
                       "dpo": {"dataset_name": "{preference_data}"}}}  # fmt: skip
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(config, *overrides, capsys):
    """``hfpipe pipeline --config config ...``, expected to fail: (exit code, its error line, seconds)."""
    started = time.time()
    with pytest.raises(SystemExit) as exit_:
        hfpipe(["pipeline", "--config", str(config), *overrides])
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[1] == "(set HFPIPE_DEBUG=1 to see the traceback)", lines
    return exit_.value.code, lines[0], time.time() - started


def test_good_data_passes_the_checks(chain, capsys):
    hfpipe(["pipeline", "--config", str(chain), "--dry_run"])
    printed = capsys.readouterr().out.splitlines()
    assert (
        printed[-1] == "checked the inputs of 3 stage(s): data, models, output_dir (--dry_run: nothing ran)"
    )
    assert not (chain.parent / "out").exists()


@pytest.mark.parametrize(
    ("key", "content", "message"),
    [
        ("instruction_data", None, r"stage 'sft': instruction data '.*missing.json' does not exist"),
        ("instruction_data", [], r"stage 'sft': instruction data '.*bad.json' is an empty list"),
        ("instruction_data", '[{"instruction": "a", "output": "b"}, {"instruction": ',
         r"stage 'sft': instruction data '.*bad.json' is not valid JSON at line 1"),
        ("instruction_data", [RECORD, "not a record"],
         r"stage 'sft': instruction data '.*bad.json': record 2 is not an object but str 'not a record'"),
        ("instruction_data", [{"question": "q", "answer": "a"}] * 5,
         r"stage 'sft': instruction data '.*bad.json': no usable columns in \['answer', 'question'\]"),
        ("preference_data", [RECORD] * 5,
         r"stage 'dpo': preference data '.*bad.json': preference data needs the columns .*missing \['chosen'"),
        ("preference_data", [], r"stage 'dpo': preference data '.*bad.json' is an empty list"),
        ("pretrain.dataset_name", None, r"stage 'pretrain': corpus '.*missing.json' does not exist"),
        ("pretrain.dataset_name", [], r"stage 'pretrain': corpus '.*bad.json': the corpus is empty"),
        ("pretrain.dataset_name", [{"text": "a"}, "b"],
         r"stage 'pretrain': corpus '.*bad.json': record 2 is not an object but str 'b'"),
        ("pretrain.dataset_name", [{"body": "a"}], r"stage 'pretrain': corpus '.*bad.json' has no column 'text'"),
    ],
)  # fmt: skip
def test_bad_data_stops_before_the_first_stage(chain, tmp_path, capsys, key, content, message):
    path = tmp_path / "missing.json" if content is None else write_json(tmp_path / "bad.json", content)
    for dry_run in ([], ["--dry_run"]):
        code, error, seconds = run(chain, f"--{key}", str(path), *dry_run, capsys=capsys)
        assert code == 2 and error.startswith("error: ") and seconds < SECONDS
        assert re.search(message, error), error
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("key", "name", "message"),
    [
        ("sft.model_name_or_path", "{tmp}/no-such-model", "stage 'sft': model '{tmp}/no-such-model' does not exist"),
        ("dpo.model_name_or_path", "no-such-org/no-such-model", "stage 'dpo': model 'no-such-org/no-such-model' is "
         "not a local directory or file, and HF_HUB_OFFLINE=1 keeps the Hub out"),
        ("pretrain.tokenizer_name_or_path", "{tmp}/tok", "stage 'pretrain': tokenizer '{tmp}/tok' does not exist"),
    ],
)  # fmt: skip
def test_an_unknown_model_or_tokenizer_stops_early(chain, tmp_path, capsys, key, name, message):
    code, error, _ = run(chain, f"--{key}", name.format(tmp=tmp_path), capsys=capsys)  # offline: conftest
    assert code == 2 and error.startswith("error: " + message.format(tmp=tmp_path)), error
    assert not (tmp_path / "out").exists()


def test_a_path_an_earlier_stage_makes_is_taken_as_given(chain, tmp_path, capsys):
    hfpipe(["pipeline", "--config", str(chain), "--dpo.model_name_or_path", str(tmp_path / "out" / "sft"),
            "--dry_run"])  # fmt: skip
    assert "dpo" in capsys.readouterr().out


def test_an_output_dir_that_is_a_file_is_one_line(chain, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    code, error, _ = run(chain, "--output_dir", str(tmp_path / "taken"), capsys=capsys)
    assert code == 2 and error == f"error: pipeline {chain}: output_dir '{tmp_path / 'taken'}' is a file, not a directory; choose another output_dir"  # fmt: skip
    code, error, _ = run(chain, "--output_dir", str(tmp_path / "taken" / "out"), capsys=capsys)
    assert code == 2 and "is inside" in error and "which is a file" in error


@pytest.mark.parametrize("recipe", ["sft", "evaluate", "quantize"])
def test_a_recipe_with_an_output_dir_that_is_a_file_is_one_line(tmp_path, capsys, recipe):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(SystemExit) as exit_:
        hfpipe([recipe, "--model_name_or_path", "x", "--output_dir", str(tmp_path / "taken")])
    error = capsys.readouterr().err.splitlines()[0]
    assert exit_.value.code == 2 and error.startswith("error: output_dir ") and "is a file" in error


@pytest.mark.slow
def test_the_command_stops_in_start_up_time(chain, tmp_path):
    """The real process: exit code 2, one line, and nothing trained (a first stage would take minutes)."""
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "hfpipe", "pipeline", "--config", str(chain),
                           "--instruction_data", write_json(tmp_path / "bad.json", [])],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("error: stage 'sft': instruction data ")
    assert time.time() - started < 3 * SECONDS and not (tmp_path / "out").exists()
