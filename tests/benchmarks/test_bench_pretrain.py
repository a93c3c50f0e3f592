"""Smoke test: bench_pretrain.py --quick runs the recipe and a GPT-2 Trainer in fp32 and in bf16 autocast and
writes its table, with the recipe's bf16/fp32 ratio and the CPU features that explain it."""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pretrain.py"
NUMBER = r"([\d,.]+)"


def test_quick_benchmark_writes_table(tmp_path):
    output = tmp_path / "pretrain.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--output", str(output), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = output.read_text()
    assert table in proc.stdout
    assert "partial results" not in table
    for kind in ("steady", "train_runtime"):
        for dtype in ("fp32", "bf16 autocast"):
            row = f"train tokens/s, {kind}, {dtype}"
            match = re.search(rf"^\| {re.escape(row)} \| {NUMBER} \| {NUMBER} \| ([\d.]+)x \|", table, re.M)
            assert match, f"missing row {row!r} in\n{table}"
            ours, reference, ratio = (float(g.replace(",", "")) for g in match.groups())
            assert ours > 0 and reference > 0 and ratio > 0  # ratio = median of back-to-back pair ratios
        match = re.search(
            rf"^\| \*\*bf16 / fp32 tokens/s, {kind}\*\* \| \*\*([\d.]+)x\*\* \| ([\d.]+)x \|", table, re.M
        )
        assert match, f"missing the bf16/fp32 ratio ({kind}) in\n{table}"
        assert all(float(g) > 0 for g in match.groups())
    for dtype in ("fp32", "bf16"):
        assert re.search(rf"^\| MFU vs {dtype} matmul peak, steady, .*\| [\d.]+% \| [\d.]+% \|", table, re.M)
        assert re.search(rf"^\| measured matmul peak, {dtype} .*\| [\d,.]+ GFLOP/s \|", table, re.M)
    # The CPU features that decide the bf16 branch, so that the ratio can be read.
    assert re.search(r"AVX512-BF16: (yes|no), AMX: (yes|no)", table)
    assert re.search(r"cpu_has_fast_bf16\(\)` = (True|False)", table)
    assert "tinyshakespeare (recipes" not in table  # --quick leaves the long runs out
