"""Smoke test: benchmarks/bench_model.py --quick runs, checks token equality, and writes its table."""

import re

import torch

ROWS = (
    "train fwd+bwd, fp32",
    "train fwd+bwd, bf16 autocast",
    "greedy generate, 32 new tokens",
    "generate with KV cache, 128 new tokens",
)


def test_quick_benchmark_writes_table(tmp_path, capsys, load_script):
    bench = load_script("benchmarks/bench_model.py")
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
