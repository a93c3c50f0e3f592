"""Smoke test: benchmarks/bench_model.py --quick runs, checks token equality, and writes its table."""

import importlib.util
import re
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_model.py"
ROWS = (
    "train fwd+bwd, fp32",
    "train fwd+bwd, bf16 autocast",
    "greedy generate, 32 new tokens",
    "generate with KV cache, 128 new tokens",
)


def test_quick_benchmark_writes_table(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_model", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_model", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    output = tmp_path / "model.md"
    threads = torch.get_num_threads()
    try:
        table = bench.main(["--quick", "--output", str(output)])  # in-process: saves an interpreter start
    finally:
        torch.set_num_threads(threads)
    assert output.read_text() == table
    assert table in capsys.readouterr().out
    for row in ROWS:
        pattern = rf"^\| {re.escape(row)} \| ([\d,.]+) tok/s \| ([\d,.]+) tok/s .*\| ([\d.]+)x \|"
        match = re.search(pattern, table, re.M)
        assert match, f"missing row {row!r} in\n{table}"
        ours, reference, ratio = (float(g.replace(",", "")) for g in match.groups())
        assert ours > 0 and reference > 0
        assert abs(ratio - ours / reference) < 0.01 + 0.01 * ratio
