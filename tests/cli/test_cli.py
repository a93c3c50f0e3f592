"""``hfpipe <command>``: usage, every command's --help, mistakes, and a run from an installed wheel under accelerate."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hfpipe.cli import COMMANDS, main, only_prints_help

REPO = Path(__file__).resolve().parents[2]
# the command's Python must not see this checkout: only the installed wheel
WITHOUT_CHECKOUT = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable___hfpipe' not in "
    "getattr(f, '__module__', '')]\n"
)


def test_usage_lists_every_command(capsys):
    main(["--help"])
    printed = capsys.readouterr().out
    assert all(f"  {name} " in printed for name in COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    assert f"hfpipe {name}" in capsys.readouterr().out


def test_unknown_command_is_one_line_and_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "hfpipe", "pretrian"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: unknown command 'pretrian'; did you mean 'pretrain'? (hfpipe --help lists them)"
    )


def test_a_mistake_in_a_command_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "hfpipe", "pretrain", "--max_stpes", "3"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "max_stpes" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def wheel_site(hfpipe_wheel, tmp_path_factory):
    """hfpipe's wheel installed (no dependencies) into a directory of its own."""
    site = tmp_path_factory.mktemp("wheel") / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    str(hfpipe_wheel)], check=True, timeout=600)  # fmt: skip
    return site


def test_installed_wheel_runs_under_accelerate_with_two_processes(wheel_site, tmp_path):
    rng = random.Random(0)
    corpus = tmp_path / "corpus.jsonl"
    words = "the a cat dog sat ran on under mat log big small".split()
    corpus.write_text("".join(json.dumps({"text": " ".join(rng.choice(words) for _ in range(30))}) + "\n"
                              for _ in range(120)))  # fmt: skip
    (tmp_path / "sitecustomize.py").write_text(WITHOUT_CHECKOUT)  # every rank: the wheel, not the checkout
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{wheel_site}", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    where = subprocess.run([sys.executable, "-c", "import hfpipe; print(hfpipe.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.startswith(str(wheel_site)), where.stdout
    args = ["--dataset_name", str(corpus), "--output_dir", str(tmp_path / "out"), "--vocab_size", "300",
            "--model_preset", "tiny", "--context_length", "32", "--emb_dim", "32", "--n_layers", "1", "--n_heads", "2",
            "--block_size", "32", "--per_device_train_batch_size", "4", "--max_steps", "4", "--eval_steps", "4",
            "--save_steps", "4", "--logging_steps", "2", "--report_to", "none", "--sample_max_new_tokens", "4"]  # fmt: skip
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "-q", "--config_file",
           str(REPO / "accelerate_configs" / "cpu.yaml"), "--main_process_port", "29531", "-m", "hfpipe", "pretrain",
           *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["stage"] == "pretrain" and results["metrics"]["tokens_seen"] == 4 * 2 * 4 * 32  # 2 ranks


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["/venv/bin/hfpipe", "sft", "--help"], True),
        (["/venv/bin/hfpipe", "pretrain", "--help-all"], True),
        (["recipes/pretrain.py", "-h"], True),
        (["/venv/bin/hfpipe", "sft", "--max_steps", "3"], False),
        (["/venv/bin/pytest", "--help"], False),  # someone else's program that imported hfpipe.cli
        (["my_script.py", "--help"], False),
        (["-c"], False),
    ],
)
def test_only_a_process_printing_hfpipes_help_skips_peft(argv, expected):
    assert only_prints_help(argv) is expected


def test_every_commands_help_needs_no_peft():
    """What a help-only process does (peft hidden from transformers): every command still prints its help."""
    code = (
        "import contextlib, io, sys\n"
        "sys.modules['peft'] = None\n"
        "from hfpipe.cli import COMMANDS, main\n"
        "for name in COMMANDS:\n"
        "    out = io.StringIO()\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            main([name, '--help'])\n"
        "    except SystemExit as done:\n"
        "        assert done.code == 0 and f'hfpipe {name}' in out.getvalue(), name\n"
        "print('ok', sys.modules['peft'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok None", proc.stderr[-3000:]


def test_a_commands_help_imports_no_peft_and_prints_nothing_on_stderr():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "hfpipe", "sft", "--help"], capture_output=True,
                          text=True, timeout=300, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0 and "hfpipe's SFTArguments" in proc.stdout
    imported = [
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert "transformers" in imported and "peft" not in imported and "torchao" not in imported
    assert [line for line in proc.stderr.splitlines() if not line.startswith("import time:")] == []
