"""recipes/inspect_sft_data.py: the loss-mask viewer renders what the trainer sees, with its counts."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "sft"))
from sft_fixtures import alpaca_records, save_hfpipe_model, write_json  # noqa: E402

from hfpipe.cli import inspect_sft_data  # noqa: E402


def test_viewer_brackets_trained_tokens_and_counts(tmp_path):
    records = alpaca_records(20)
    records[0] = {"instruction": "Say red.", "input": "", "output": "red"}
    records[1] = {"instruction": "Say red.", "input": "", "output": ""}  # dropped and counted
    data = write_json(tmp_path / "d.json", records)
    model = save_hfpipe_model(tmp_path / "m")
    report = inspect_sft_data.main([
        "--config", str(REPO / "recipes/configs/sft_alpaca.yaml"), "--model_name_or_path", str(model),
        "--dataset_name", str(data), "--num_examples", "2", "--color", "never", "--max_length", "60",
    ])  # fmt: skip
    assert "### Instruction:\nSay red.\n\n### Response:\n[[red<|endoftext|>]]" in report
    assert "dropped: 1 empty response" in report
    assert "truncated to max_length: " in report and "tokens trained (" in report
    assert report.count("--- example") == 2
    colored = inspect_sft_data.main([
        "--model_name_or_path", str(model), "--dataset_name", str(data), "--num_examples", "1", "--color", "always",
        "--dataset_format", "alpaca", "--split_seed", "null",
    ])  # fmt: skip
    assert "\033[42;30mred<|endoftext|>\033[0m" in colored
