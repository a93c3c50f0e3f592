"""Smoke test: benchmarks/bench_eval.py --quick runs both sides, they agree, and it writes its table."""

import importlib.util
import re
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_eval.py"


def test_quick_benchmark_writes_table(tmp_path):
    pytest.importorskip("lm_eval")
    spec = importlib.util.spec_from_file_location("bench_eval", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = tmp_path / "eval.md"
    threads = torch.get_num_threads()
    try:
        table = bench.main(["--quick", "--documents", "12", "--output", str(output)])
    finally:
        torch.set_num_threads(threads)
    assert output.read_text() == table
    assert re.search(r"\*\*hfpipe / lm-eval\*\* \| \*\*[\d.]+x\*\*", table)
    difference = float(re.search(r"rel. difference ([\d.e+-]+)", table).group(1))
    assert difference < 1e-4  # the same log-likelihood from both
