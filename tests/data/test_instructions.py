"""hfpipe.data.instructions: the book's template, format detection, normalisation and dropped records."""

import pytest

from hfpipe.data.instructions import (
    ALPACA_PREAMBLE,
    check_messages,
    detect_format,
    format_alpaca_prompt,
    normalize_record,
    normalize_records,
)


def test_alpaca_prompt_is_the_books_template():
    with_input = format_alpaca_prompt({"instruction": "Convert to passive.", "input": "The cat ate it."})
    assert with_input == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nConvert to passive.\n\n### Input:\nThe cat ate it.\n\n### Response:\n"
    )
    without = format_alpaca_prompt({"instruction": "Name a colour.", "input": ""})
    assert without == f"{ALPACA_PREAMBLE}\n\n### Instruction:\nName a colour.\n\n### Response:\n"
    assert "### Input" not in without


@pytest.mark.parametrize(
    "columns, fmt",
    [
        (["instruction", "input", "output"], "alpaca"),
        (["instruction", "output"], "alpaca"),
        (["messages"], "messages"),
        (["conversations", "id"], "messages"),
        (["prompt", "completion"], "prompt_completion"),
        (["text", "meta"], "text"),
    ],
)
def test_detect_format(columns, fmt):
    assert detect_format(columns) == fmt


def test_no_usable_columns_lists_the_formats():
    with pytest.raises(
        ValueError, match="no usable columns.*instruction, input.*messages.*prompt, completion.*text"
    ):
        detect_format(["question", "answer"])


@pytest.mark.parametrize(
    "messages, reason",
    [
        ([{"role": "user", "content": "hi"}], "no assistant turn"),
        ([{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}], "roles out of order"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "roles out of order"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}], "roles out of order"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "  "}], "empty response"),
        ([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}], "unknown role"),
        ([], "empty conversation"),
        (
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
            ],
            None,
        ),
    ],
)
def test_check_messages(messages, reason):
    assert check_messages(messages) == reason


def test_bad_records_are_dropped_and_counted():
    records = [
        {"instruction": "Say hi.", "input": "", "output": "hi"},
        {"instruction": "Say hi.", "input": "", "output": ""},
        {"instruction": "", "input": "", "output": "x"},
        {"instruction": "Say hi.", "input": None, "output": "   "},
    ]
    kept, dropped = normalize_records(records, "alpaca")
    assert len(kept) == 1 and dropped == {"empty response": 2, "empty instruction": 1}
    assert kept[0]["prompt"].endswith("### Response:\n") and kept[0]["completion"] == "hi"


def test_sharegpt_and_prompt_completion_shapes():
    out, _ = normalize_record(
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}, "messages"
    )
    assert out == {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    conv, _ = normalize_record(
        {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}]},
        "prompt_completion",
    )
    assert conv["completion"][0]["content"] == "a"
    assert normalize_record({"prompt": "q", "completion": ""}, "prompt_completion") == (
        None,
        "empty response",
    )
    assert normalize_record(
        {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "user", "content": "a"}]},
        "prompt_completion",
    ) == (None, "roles out of order")
    chat, _ = normalize_record({"instruction": "Add.", "input": "1 2", "output": "3"}, "alpaca_chat")
    assert chat["messages"] == [
        {"role": "user", "content": "Add.\n\n1 2"},
        {"role": "assistant", "content": "3"},
    ]
