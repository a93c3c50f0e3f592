"""Smoke test: benchmarks/bench_dedup.py on a small planted corpus runs both engines and writes its table."""

import re

import pytest


def test_small_benchmark_writes_table(tmp_path, load_script):
    pytest.importorskip("datatrove")
    bench = load_script("benchmarks/bench_dedup.py")
    output = tmp_path / "dedup.md"
    table = bench.main(
        ["--base", "300", "--plants", "30", "--tasks", "1", "--workers", "1", "--output", str(output)]
    )
    assert output.read_text() == table
    assert re.search(r"\| planted \| off \| ([\d,]+) \| \1 \| yes \| 0 \|", table)  # near-dedup off: the same
    for engine in ("builtin", "datatrove"):
        plants, lost = re.search(rf"\| {engine} \| ([\d.]+) % \| ([\d.]+) % \|", table).groups()
        assert float(plants) >= 95 and float(lost) <= 1
