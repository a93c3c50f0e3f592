"""Smoke test: benchmarks/bench_model.py --quick runs and writes its table."""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_model.py"


def test_quick_benchmark_writes_table(tmp_path):
    output = tmp_path / "model.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = output.read_text()
    assert table in proc.stdout
    for row in (
        "train fwd+bwd, fp32",
        "train fwd+bwd, bf16 autocast",
        "greedy generate, 32 new tokens",
        "generate with KV cache, 128 new tokens",
    ):
        match = re.search(
            rf"^\| {re.escape(row)} \| ([\d,.]+) tok/s \| ([\d,.]+) tok/s .*\| ([\d.]+)x \|", table, re.M
        )
        assert match, f"missing row {row!r} in\n{table}"
        ours, reference, ratio = (float(g.replace(",", "")) for g in match.groups())
        assert ours > 0 and reference > 0
        assert abs(ratio - ours / reference) < 0.01 + 0.01 * ratio
