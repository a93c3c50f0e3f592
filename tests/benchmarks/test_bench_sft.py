"""Smoke test: bench_sft.py --quick pretrains, fine-tunes, compares with trl + GPT-2 and writes its table."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sft.py"


@pytest.mark.slow
def test_quick_benchmark_writes_table(tmp_path, shared_data):
    output = tmp_path / "sft.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--data", str(shared_data / "instruction-data.json"), "--quick",
         "--output", str(output), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = output.read_text()
    assert re.search(r"recipes/sft.py vs trl SFTTrainer.*\| [\d,]+ \| [\d,]+ \| [\d.]+x \|", table)
    assert re.search(r"packing on .* \| [\d.]+x \|", table)
    assert "| split train / test / validation | 935 / 8 / 55 |" in table
    assert table.count("  - response: ") == 3
