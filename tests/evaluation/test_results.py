"""The shared results shape and the comparison table."""

import json

import pytest

from hfpipe.evaluation.results import read_results, write_results, write_results_table


def test_results_round_trip_and_table(tmp_path):
    a = write_results(tmp_path / "pretrain", "outputs/pretrain", {"perplexity": 40.0, "bits_per_byte": 2.5})
    b = write_results(tmp_path / "sft", "outputs/sft", {"perplexity": 30.0, "judge/mean": 55.0}, stage="sft")
    rows = [read_results(a.parent), read_results(b)]
    assert rows[0]["stage"] == "pretrain" and rows[1]["metrics"] == {"perplexity": 30.0, "judge/mean": 55.0}
    paths = write_results_table(rows, tmp_path / "table")
    table = json.loads(paths["json"].read_text())
    assert table["columns"] == ["perplexity", "bits_per_byte", "judge/mean"]
    assert [r["stage"] for r in table["rows"]] == ["pretrain", "sft"]
    lines = paths["markdown"].read_text().splitlines()
    assert lines[0] == "| stage | model | perplexity | bits_per_byte | judge/mean |"
    assert lines[2] == "| pretrain | `outputs/pretrain` | 40 | 2.5 | – |"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_results_are_errors(tmp_path):
    with pytest.raises(ValueError, match="must be numbers"):
        write_results(tmp_path, "m", {"acc": "high"})
    (tmp_path / "results.json").write_text('{"model": "m"}')
    with pytest.raises(ValueError, match="metrics"):
        read_results(tmp_path)
    with pytest.raises(FileNotFoundError, match="no results file"):
        read_results(tmp_path / "missing")
    with pytest.raises(ValueError, match="no results"):
        write_results_table([], tmp_path)


def test_the_chart_leaves_out_constant_and_restated_figures():
    from hfpipe.evaluation.metric_notes import chart_panels

    columns = ["loss", "perplexity", "bits_per_byte", "eval_tokens", "eval_documents", "hfpipe_mc/acc",
               "hfpipe_mc/acc_norm", "hfpipe_mc/chance", "hfpipe_bpb/word_perplexity", "hfpipe_bpb/byte_perplexity",
               "hfpipe_bpb/bits_per_byte", "rouge"]  # fmt: skip
    assert chart_panels(columns) == [["perplexity"], ["hfpipe_mc/acc", "hfpipe_mc/acc_norm"], ["rouge"]]
    assert chart_panels(["hfpipe_bpb/bits_per_byte"]) == [["hfpipe_bpb/bits_per_byte"]]  # alone, it is shown
