"""benchmarks/gpu_check.sh without a GPU: it refuses in one line, its --dry-run prints commands that the
scripts and accelerate accept, and the steps it runs work end to end on a tiny model here."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.launch import _validate_launch_command, launch_command_parser

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(REPO / "benchmarks"))
import bench_gpu  # noqa: E402


def test_dry_run_prints_commands_the_steps_and_accelerate_accept(tmp_path, monkeypatch):
    env = {**os.environ, "WORK": str(tmp_path / "w"), "NGPU": "4", "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env, check=True
    )
    commands = [shlex.split(line) for line in proc.stdout.splitlines()]
    assert len(commands) == 6 and not (tmp_path / "w").exists()  # printed, nothing run
    steps = []
    monkeypatch.chdir(REPO)  # the script runs from the repository root
    for cmd in commands:
        if cmd[0] == "env":  # the single-GPU runs see one GPU
            assert cmd[1] == "CUDA_VISIBLE_DEVICES=0"
            cmd = cmd[2:]
        assert cmd[0] == sys.executable
        if cmd[1:3] == ["-m", "accelerate.commands.launch"]:
            args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(cmd[3:]))
            assert args.use_fsdp and args.num_processes == 4 and defaults.fsdp_config["fsdp_version"] == 2
            cmd = [args.training_script, *args.training_script_args]
        else:
            cmd = cmd[1:]
        assert cmd[0] == "benchmarks/bench_gpu.py"
        parsed = bench_gpu.build_parser().parse_args(cmd[1:])
        assert parsed.workdir == tmp_path / "w" and parsed.size == "gpt2-124m"
        steps.append((parsed.step, getattr(parsed, "torch_compile", None)))
    assert steps == [
        ("prepare", None),
        ("throughput", False),
        ("throughput", True),
        ("throughput", False),
        ("fsdp", None),
        ("table", None),
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the script would run")
def test_without_a_gpu_it_refuses_in_one_line(tmp_path):
    env = {**os.environ, "WORK": str(tmp_path / "w"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert re.fullmatch(r"gpu_check: no CUDA GPU here \(.*\); .*--dry-run.*\n", proc.stderr)
    assert not (tmp_path / "w").exists()
    bad = subprocess.run(["bash", str(SCRIPT), "--dryrun"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("usage:")


def test_the_steps_run_on_a_tiny_model_and_print_one_table(tmp_path, capsys):
    """prepare -> throughput -> table at --size tiny on this CPU (torch_compile and FSDP steps need GPUs)."""
    from hfpipe.tokenization import save_tokenizer, train_bpe_tokenizer

    text = tmp_path / "corpus.txt"
    text.write_text(" ".join(f"the cat {i % 7} sat on the mat {i % 5}." for i in range(3000)))
    save_tokenizer(train_bpe_tokenizer([text.read_text()], vocab_size=300), tmp_path / "tok")
    work, out = tmp_path / "work", tmp_path / "gpu_check.md"
    bench_gpu.main(
        [
            "prepare",
            "--workdir",
            str(work),
            "--size",
            "tiny",
            "--tokenizer",
            str(tmp_path / "tok"),
            "--text",
            str(text),
        ]
    )
    bench_gpu.main(["throughput", "--workdir", str(work), "--size", "tiny"])
    bench_gpu.main(["throughput", "--workdir", str(work), "--size", "tiny", "--name", "modern",
                    "--architecture", "llama", "--optimizer", "muon"])  # fmt: skip
    result = json.loads((work / "eager.json").read_text())
    assert [len(result["runs"][side]) for side in ("hfpipe", "gpt2")] == [1, 1]
    assert result["runs"]["hfpipe"][0]["params"] == result["runs"]["gpt2"][0]["params"]  # the same model size
    capsys.readouterr()
    bench_gpu.main(["table", "--workdir", str(work), "--output", str(out)])
    table = capsys.readouterr().out
    assert table == out.read_text() + "\n"  # print() ends it with one more newline
    row = re.search(
        r"^\| 1 device, eager \| ([\d,]+) \| ([\d,]+) \| ([\d.]+)x \| ([\d.]+)% \| ([\d.]+)% \|$", table, re.M
    )
    assert row and all(float(g.replace(",", "")) > 0 for g in row.groups())
    assert (
        "| 1 device, torch_compile | not run |" in table
        and "| FSDP2, accelerate_configs/fsdp.yaml | not run |" in table
    )
    modern = re.search(
        r"^\| 1 device, eager, llama \+ muon \| ([\d,]+) \| ([\d,]+) \| ([\d.]+)x \|", table, re.M
    )
    assert modern and all(float(g.replace(",", "")) > 0 for g in modern.groups())
    assert re.search(r"The modern preset \(llama, muon\) trains at [\d.]+x the book preset's tokens/s", table)
    assert re.search(r"Step times: prepare \d+ s, eager \d+ s, modern \d+ s\.", table)
