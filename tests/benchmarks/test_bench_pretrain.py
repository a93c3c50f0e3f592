"""Smoke test: bench_pretrain.py --quick runs the recipe and a GPT-2 Trainer and writes its table."""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pretrain.py"


def test_quick_benchmark_writes_table(tmp_path):
    output = tmp_path / "pretrain.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--output", str(output), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = output.read_text()
    assert table in proc.stdout
    for row in ("train tokens/s, steady", "train tokens/s, train_runtime"):
        match = re.search(rf"^\| {re.escape(row)} \| ([\d,.]+) \| ([\d,.]+) \| ([\d.]+)x \|", table, re.M)
        assert match, f"missing row {row!r} in\n{table}"
        ours, reference, ratio = (float(g.replace(",", "")) for g in match.groups())
        assert ours > 0 and reference > 0 and ratio > 0  # ratio = median of back-to-back pair ratios
    assert re.search(r"^\| MFU vs fp32 matmul peak, steady \| [\d.]+% \| [\d.]+% \|", table, re.M)
    assert re.search(r"^\| measured matmul peak, fp32 .*\| [\d,.]+ GFLOP/s \|", table, re.M)
    assert "tinyshakespeare (recipes" not in table  # --quick leaves the long run out
