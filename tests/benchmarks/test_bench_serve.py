"""Smoke test: benchmarks/bench_serve.py --quick runs both servers, fails no request, and writes its table."""

import re

import pytest


@pytest.mark.slow  # starts three servers in new interpreters (a minute or more on a busy machine)
def test_quick_benchmark_writes_table(tmp_path, load_script):
    bench = load_script("benchmarks/bench_serve.py")
    output = tmp_path / "serve.md"
    table = bench.main(["--quick", "--output", str(output)])
    assert output.read_text() == table
    rows = re.findall(
        r"^\| (hfpipe|transformers serve[^|]*?) \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \| ([\d,]+) \|",
        table,
        re.M,
    )
    peers = ("transformers serve", "transformers serve --continuous-batching")
    assert {(name, int(c)) for name, c, *_ in rows} == {
        (name, c) for name in ("hfpipe", *peers) for c in (1, 4)
    }
    for name, _, requests, failed, req_s, tok_s in rows:
        assert int(requests) > 0
        if name == "hfpipe":  # a peer's failures are reported, not ours to fix
            assert int(failed) == 0 and float(req_s) > 0 and float(tok_s.replace(",", "")) > 0
    assert re.search(r"^\| GET /v1/models \| 200 \| \d+ \| \d+ \|$", table, re.M)
    assert re.search(r'^\| `"messages": "hello"` \| 400 \| \d+ \| \d+ \|$', table, re.M)
    assert re.search(r"hfpipe / transformers serve tokens/s at concurrency 4 .* \| [\d.]+x \|", table)
