"""Smoke tests: bench_preference.py refuses a missing data file, and --quick runs every stage (and the plain-trl
side) and writes its table."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_preference.py"


@pytest.mark.slow  # importing the benchmark (trl, peft, every recipe) alone takes ~20 s on a busy machine
def test_missing_data_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--data", str(tmp_path / "nope.json")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (
        proc.returncode != 0
        and "does not exist; pass the path of instruction-data-with-preference.json" in proc.stderr
    )


@pytest.mark.slow
def test_quick_benchmark_writes_table(tmp_path, shared_data):
    output = tmp_path / "preference.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--data", str(shared_data / "instruction-data-with-preference.json"), "--quick",
         "--output", str(output), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = output.read_text()
    assert re.search(
        r"reward model: held-out pairwise accuracy \(110 test pairs\).*\| [\d.]+ % -> [\d.]+ % \|", table
    )
    assert re.search(r"DPO: held-out reward accuracy, before -> after \| 0.0 % -> [\d.]+ % \|", table)
    assert re.search(
        r"GRPO: mean reward, first 10 % -> last 10 % of 4 steps \| -?[\d.]+ -> -?[\d.]+ \|", table
    )
    assert re.search(r"recipes/dpo.py vs trl DPOTrainer .* \| [\d,]+ vs [\d,]+ = [\d.]+x \|", table)
    for stage, plain in (("reward model", "RewardTrainer \\+ GPT2ForSequenceClassification"),
                         ("DPO", "DPOTrainer \\+ GPT2LMHeadModel")):  # fmt: skip
        row = re.search(
            rf"\| {stage} \| {plain} \| ([\d.]+) % vs ([\d.]+) % \| (?:not )?met \([+-]\d+ of 110 pairs\) \| "
            r"-?[\d.]+ vs -?[\d.]+ \| [\d.]+ vs [\d.]+ = [\d.]+x \|",
            table,
        )
        assert row, f"no hfpipe-vs-plain-trl row for {stage}:\n{table}"
        assert all(0 <= float(v) <= 100 for v in row.groups()), row.group(0)
    assert table.count("  - after: ") == 2
