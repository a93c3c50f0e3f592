"""Smoke test: benchmarks/bench_eval.py --quick runs both sides, they agree, and it writes its table."""

import re

import pytest
import torch


def test_quick_benchmark_writes_table(tmp_path, load_script):
    pytest.importorskip("lm_eval")
    bench = load_script("benchmarks/bench_eval.py")
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
