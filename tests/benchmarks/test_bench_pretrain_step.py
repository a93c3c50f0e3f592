"""Smoke test: bench_pretrain_step.py times one optimizer step of nanoGPT's GPT and of hfpipe's variants and
writes the table with the ratios to nanoGPT and the GELU timings."""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pretrain_step.py"


def test_quick_run_writes_table(tmp_path):
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
