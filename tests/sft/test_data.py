"""hfpipe.sft.data: the response-only label mask, token by token, for every format; splits; bad input.

The tokenizer is prepared as an SFT run prepares it: eos (``set_eos_token``), the pad rule (``fit_pad_token``)
and the format's chat template (``set_chat_template``).
"""

import json
import sys
from pathlib import Path

import pytest
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from hfpipe.data.instructions import (
    ALPACA_PREAMBLE,
    load_instruction_records,
    normalize_record,
    set_chat_template,
    split_records,
)
from hfpipe.sft.data import IGNORE_INDEX, tokenize_record, tokenize_records
from hfpipe.sft.inspect import render_example
from hfpipe.training.run import fit_pad_token, set_eos_token

sys.path.insert(0, str(Path(__file__).parent))
from sft_fixtures import alpaca_records, bpe_tokenizer, char_tokenizer, write_json  # noqa: E402

EOS = "<|endoftext|>"


def prepare_tokenizer(tok, fmt: str, eos_token: str | None = None) -> None:
    set_eos_token(tok, eos_token)
    fit_pad_token(None, tok)
    set_chat_template(tok, fmt)


HEAD = f"{ALPACA_PREAMBLE}\n\n### Instruction:\n"
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "Q2"},
    {"role": "assistant", "content": "A2"},
]


def masked(record, fmt="alpaca"):
    """The record as the trainer sees it, trained tokens in [[ ]]; one token per character."""
    tok = char_tokenizer()
    prepare_tokenizer(tok, fmt)
    row = tokenize_record(record, tok)
    assert len(row["input_ids"]) == len(row["labels"])
    for i, label in zip(row["input_ids"], row["labels"]):
        assert label in (i, IGNORE_INDEX)  # a trained token's label is the token itself (shifted in the loss)
    assert row["labels"][-1] == tok.eos_token_id or row["input_ids"][-1] != tok.eos_token_id
    return render_example(row["input_ids"], row["labels"], tok), row, tok


@pytest.mark.parametrize(
    "record, expected",
    [
        (
            {"instruction": "Say hi.", "input": "", "output": "hi"},
            f"{HEAD}Say hi.\n\n### Response:\n[[hi{EOS}]]",
        ),
        (
            {"instruction": "Add.", "input": "1 2", "output": "3"},
            f"{HEAD}Add.\n\n### Input:\n1 2\n\n### Response:\n[[3{EOS}]]",
        ),
    ],
)
def test_alpaca_mask(record, expected):
    text, row, tok = masked(normalize_record(record, "alpaca")[0])
    assert text == expected
    assert row["labels"][-1] == tok.eos_token_id != tok.pad_token_id  # eos is trained, and is not the pad


def test_multi_turn_chat_trains_only_assistant_turns_with_their_eos():
    text, _, _ = masked({"messages": CHAT}, "messages")
    assert (
        text
        == f"<|system|>\nBe brief.\n<|user|>\nQ1\n<|assistant|>\n[[A1{EOS}]]\n<|user|>\nQ2\n<|assistant|>\n[[A2{EOS}]]\n"
    )


def test_alpaca_rendered_as_chat():
    record = normalize_record({"instruction": "Add.", "input": "1 2", "output": "3"}, "alpaca_chat")[0]
    text, _, _ = masked(record, "alpaca_chat")
    assert text == f"<|user|>\nAdd.\n\n1 2\n<|assistant|>\n[[3{EOS}]]\n"


def test_prompt_completion_plain_and_conversational():
    text, _, _ = masked({"prompt": "Q: 1+1=?\nA:", "completion": " 2"}, "prompt_completion")
    assert text == f"Q: 1+1=?\nA:[[ 2{EOS}]]"
    text, _, _ = masked({"prompt": CHAT[:4], "completion": CHAT[4:]}, "prompt_completion")
    # the assistant turn inside the prompt is context, not a target
    assert (
        text
        == f"<|system|>\nBe brief.\n<|user|>\nQ1\n<|assistant|>\nA1{EOS}\n<|user|>\nQ2\n<|assistant|>\n[[A2{EOS}]]\n"
    )


def test_text_trains_every_token_and_ends_with_eos():
    text, _, _ = masked({"text": "a b"}, "text")
    assert text == f"[[a b{EOS}]]"


def test_collated_batch_masks_padding_but_not_eos():
    tok = char_tokenizer()
    prepare_tokenizer(tok, "alpaca")
    rows = [tokenize_record(normalize_record(r, "alpaca")[0], tok) for r in alpaca_records(2)]
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)(rows)
    short = min(range(2), key=lambda i: len(rows[i]["input_ids"]))
    n = len(rows[short]["input_ids"])
    assert (batch["input_ids"][short, n:] == tok.pad_token_id).all()
    assert (batch["labels"][short, n:] == IGNORE_INDEX).all() and (
        batch["attention_mask"][short, n:] == 0
    ).all()
    assert batch["labels"][short, n - 1] == tok.eos_token_id != tok.pad_token_id


def test_pad_equal_to_eos_is_fixed_with_a_warning(caplog):
    tok = bpe_tokenizer()
    tok.pad_token = tok.eos_token
    tok.chat_template = None
    prepare_tokenizer(tok, "messages")
    assert tok.pad_token == "<|pad|>" and tok.pad_token_id != tok.eos_token_id
    assert "pad token is its eos token" in caplog.text
    assert "{% generation %}" in tok.chat_template  # hfpipe's default template, for a tokenizer without one


def test_template_without_generation_marks_is_an_error():
    tok = bpe_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="generation"):
        prepare_tokenizer(tok, "messages")


def test_unknown_eos_token_is_an_error():
    with pytest.raises(ValueError, match="eos_token '<\\|im_end\\|>' is not in the tokenizer"):
        prepare_tokenizer(bpe_tokenizer(), "alpaca", eos_token="<|im_end|>")


def test_overlong_examples_truncated_or_dropped_and_counted():
    tok = bpe_tokenizer()
    prepare_tokenizer(tok, "alpaca")
    records = [normalize_record(r, "alpaca")[0] for r in alpaca_records(6)]
    lengths = [len(tokenize_record(r, tok)["input_ids"]) for r in records]
    cut = sorted(lengths)[2]
    n_long = sum(n > cut for n in lengths)
    ds, stats = tokenize_records(records, tok, cut)
    assert stats.truncated == n_long and len(ds) <= 6 and max(len(x) for x in ds["input_ids"]) == cut
    ds, stats = tokenize_records(records, tok, cut, drop_overlong=True)
    assert stats.dropped["longer than max_length"] == n_long and len(ds) == 6 - n_long
    # a max_length that keeps only prompts leaves nothing to train: dropped, counted, then an error
    with pytest.raises(ValueError, match="no example left.*no trained token left"):
        tokenize_records(records, tok, 10)


def test_trained_share_is_counted():
    tok = bpe_tokenizer()
    prepare_tokenizer(tok, "alpaca")
    records = [normalize_record(r, "alpaca")[0] for r in alpaca_records(4)]
    ds, stats = tokenize_records(records, tok, None)
    trained = sum(sum(label != IGNORE_INDEX for label in row[1:]) for row in ds["labels"])
    assert stats.trained_tokens == trained and 0 < stats.trained_share < 0.5
    assert stats.tokens == sum(len(x) for x in ds["input_ids"])


def test_split_is_the_books_85_10_5():
    parts = split_records(list(range(1100)), 0.10, 0.05)
    assert [len(parts[k]) for k in ("train", "test", "validation")] == [935, 110, 55]
    assert parts["train"][:3] == [0, 1, 2]  # file order without a seed
    seeded = [split_records([{"i": i} for i in range(100)], seed=s)["test"] for s in (1, 1, 2)]
    assert seeded[0] == seeded[1] != seeded[2]
    with pytest.raises(ValueError, match="none for training"):
        split_records([1], 0.1, 0.05)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_load_from_data_sources(tmp_path, suffix):
    records = alpaca_records(5) + [{"instruction": "x", "input": "", "output": ""}]
    path = tmp_path / f"data{suffix}"
    if suffix == ".json":
        write_json(path, records)
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in records))
    else:
        import pandas as pd

        pd.DataFrame(records).to_parquet(path)
    kept, fmt, dropped = load_instruction_records(str(path))
    assert fmt == "alpaca" and len(kept) == 5 and dropped == {"empty response": 1}


def test_load_errors_name_the_problem(tmp_path):
    bad = write_json(tmp_path / "qa.json", [{"question": "q", "answer": "a"}])
    with pytest.raises(ValueError, match="no usable columns"):
        load_instruction_records(str(bad))
    empty = write_json(tmp_path / "empty.json", [{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(ValueError, match="no usable messages record.*no assistant turn"):
        load_instruction_records(str(empty))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_instruction_records(str(tmp_path / "missing.json"))
