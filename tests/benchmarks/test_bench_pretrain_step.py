"""Smoke test: bench_pretrain_step.py times one optimizer step of nanoGPT's GPT and of hfpipe's variants and
writes the table with the ratios to nanoGPT and the GELU timings."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pretrain_step.py"


def test_without_nanogpt_one_line_says_where_to_get_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NANOGPT_DIR"}
    proc = subprocess.run([sys.executable, str(BENCH), "--output", str(tmp_path / "t.md")],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().count("\n") == 0
        and "git clone https://github.com/karpathy/nanoGPT" in proc.stderr
    )
    assert not (tmp_path / "t.md").exists()


def test_quick_run_writes_table(tmp_path):
    if not os.environ.get("NANOGPT_DIR"):
        pytest.skip("set NANOGPT_DIR to a checkout of github.com/karpathy/nanoGPT (hfpipe does not ship it)")
    output = tmp_path / "pretrain_step.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--without-compile", "--rounds", "2", "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = output.read_text()
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+) s \|$", table, re.M)
    names = [name for name, *_ in rows]
    assert names[0].startswith("nanoGPT") and float(rows[0][2]) == 1.0
    assert any("tanh GELU" in n for n in names) and any("exact GELU" in n for n in names)
    assert all(float(ms) > 0 for _, ms, _, _ in rows)
    assert not any("compiled" in n for n in names)
    assert re.search(r"approximate='tanh' [\d.]+ / [\d.]+, approximate='none' [\d.]+ / [\d.]+", table)
