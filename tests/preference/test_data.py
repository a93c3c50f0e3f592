"""hfpipe.preference.data: the pair shapes, drops, the missing-column error, and SFT's split."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pref_fixtures import preference_records, write_json  # noqa: E402

from hfpipe.data.instructions import (
    format_alpaca_prompt,  # noqa: E402
    split_records,  # noqa: E402
)
from hfpipe.preference.data import PreferenceDataArguments, load_pairs, load_split_pairs, split_pairs  # noqa: E402


def test_book_records_use_the_sft_prompt_and_drop_identical_pairs(tmp_path):
    records = preference_records(20)
    records[3]["rejected"] = records[3]["chosen"]
    records[5]["chosen"] = "  "
    pairs, fmt, dropped = load_pairs(str(write_json(tmp_path / "p.json", records)))
    assert fmt == "alpaca" and len(pairs) == 18
    assert dropped == {"chosen identical to rejected": 1, "empty chosen or rejected": 1}
    assert pairs[0]["prompt"] == format_alpaca_prompt(records[0]) and pairs[0]["prompt"].endswith(
        "### Response:\n"
    )
    assert pairs[0]["chosen"] == records[0]["chosen"] and pairs[0]["instruction"] == records[0]["instruction"]


def test_plain_and_conversational_pairs(tmp_path):
    plain = [{"chosen": "a good", "rejected": "a bad"}, {"chosen": "same", "rejected": "same"}]
    pairs, fmt, dropped = load_pairs(str(write_json(tmp_path / "plain.json", plain)))
    assert (fmt, pairs, dict(dropped)) == ("pairs", [plain[0]], {"chosen identical to rejected": 1})
    chat = [{
        "prompt": [{"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "hello, friend"}],
        "rejected": [{"role": "assistant", "content": "go away"}],
    }]  # fmt: skip
    pairs, fmt, _ = load_pairs(str(write_json(tmp_path / "chat.json", chat)))
    assert fmt == "pairs" and pairs == chat


def test_missing_column_names_the_expected_ones(tmp_path):
    path = write_json(tmp_path / "p.json", [{"prompt": "x", "chosen": "y", "answer": "z"}])
    with pytest.raises(ValueError, match=r"needs the columns chosen and rejected.*missing \['rejected'\]"):
        load_pairs(str(path))


def test_split_is_sfts_split(tmp_path):
    pairs, _, _ = load_pairs(str(write_json(tmp_path / "p.json", preference_records(40))))
    splits = split_pairs(pairs, PreferenceDataArguments())
    assert splits == split_records(pairs, 0.10, 0.05, None)
    assert [len(splits[k]) for k in ("train", "test", "validation")] == [34, 4, 2]
    with pytest.raises(ValueError, match="leave data for training"):
        PreferenceDataArguments(test_size=0.6, validation_size=0.5)


def test_pairs_stay_in_the_split_sft_put_their_record_in(tmp_path):
    records = preference_records(40)
    records[0]["rejected"] = records[0]["chosen"]  # dropped from train, after the split
    splits, fmt, dropped = load_split_pairs(
        str(write_json(tmp_path / "p.json", records)), PreferenceDataArguments()
    )
    sft_test = split_records(records, 0.10, 0.05, None)["test"]
    assert [p["instruction"] for p in splits["test"]] == [r["instruction"] for r in sft_test]
    assert [p["chosen"] for p in splits["test"]] == [r["chosen"] for r in sft_test]
    assert [len(splits[k]) for k in ("train", "test", "validation")] == [33, 4, 2]
    assert dropped == {"chosen identical to rejected": 1}
