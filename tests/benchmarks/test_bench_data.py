"""Smoke test: benchmarks/bench_data.py --quick measures both sides of each row and writes its table."""

import re

import torch


def number(text: str) -> float:
    return float(re.search(r"[\d,.]+", text).group().replace(",", ""))


def test_quick_benchmark_writes_table(tmp_path, load_script):
    bench = load_script("benchmarks/bench_data.py")  # it imports the recipes by path: sys.path is restored
    output = tmp_path / "data.md"
    threads = torch.get_num_threads()
    try:
        text = bench.main(["--quick", "--out", str(output)])
    finally:
        torch.set_num_threads(threads)
    assert output.read_text() == text
    rows = {
        r[0].split()[0]: r
        for r in (line.strip("|").split(" | ") for line in text.splitlines())
        if len(r) == 5
    }
    prepare, disk, loader = rows["prepare"], rows["disk"], rows["data"]
    ratio = number(prepare[1]) / number(prepare[2].split(":")[1])  # seconds shown to 0.1 s
    assert abs(number(prepare[3]) - ratio) < 0.01 + 0.1 / number(prepare[2].split(":")[1]) * ratio
    assert number(disk[1]) <= 2.1 and disk[4].startswith("yes")  # uint16 shards: 2 bytes + a small index
    assert abs(number(loader[3]) - number(loader[1]) / number(loader[2])) / number(loader[3]) < 0.01
    for step in ("input", "normalize", "exact dedup", "split", "tokenize+pack train"):
        assert re.search(rf"^{re.escape(step)}\s", text, re.M), step
