"""bench_native_export converts a model both ways and writes its table."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_native_export  # noqa: E402


def test_benchmark_writes_its_table(tmp_path):
    text = bench_native_export.main(["--preset", "tiny", "--output", str(tmp_path / "native.md")])
    assert (tmp_path / "native.md").read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| llama")]
    assert len(rows) == 2
    assert all(float(diff) <= 1e-5 for row in rows for diff in row.split("|")[-3:-1]), rows
