"""hfpipe.recipe_args: what --help shows first, and that --help-all reaches every setting."""

import re

import pytest

from hfpipe.cli import main
from hfpipe.cli.pretrain import ARGUMENTS as PRETRAIN
from hfpipe.cli.sft import ARGUMENTS as SFT
from hfpipe.recipe_args import COMMON_TRAINING_KEYS, RecipeParser, RunArguments


def printed_help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    assert done.value.code == 0
    return capsys.readouterr().out


def headings(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if re.match(r"^\S.*:$", line)]


@pytest.mark.parametrize(
    "command, first", [("sft", "hfpipe's SFTArguments"), ("pretrain", "hfpipe's ArchitectureArguments")]
)
def test_help_shows_hfpipes_keys_then_the_common_training_keys(command, first, capsys):
    text = printed_help(capsys, command, "--help")
    sections = headings(text)
    assert sections[0] == "options" and sections[1] == first, sections
    hfpipe_sections = [s for s in sections if s.startswith("hfpipe's ")]
    assert sections.index("common training settings (TrainingArguments)") == 1 + len(hfpipe_sections), (
        sections
    )
    assert sections[-1] != "every other TrainingArguments setting"  # behind --help-all
    assert text.index("--output_dir") < text.index("--learning_rate") < text.index("--model_name_or_path")
    assert "--logging_dir" not in text and "--push_to_hub" not in text  # the long tail
    assert "more TrainingArguments settings" in text and "--help-all lists them" in text
    assert len(text.splitlines()) < 450


@pytest.mark.parametrize("arguments", [SFT, PRETRAIN], ids=["sft", "pretrain"])
def test_help_all_lists_every_setting_once(arguments, capsys):
    parser = RecipeParser([*arguments, RunArguments])
    with pytest.raises(SystemExit):
        parser.parse_args(["--help-all"])
    text = capsys.readouterr().out
    assert headings(text)[-1] == "every other TrainingArguments setting"
    for action in parser._actions:
        for option in action.option_strings:
            assert re.search(rf"^  {re.escape(option)}\b", text, re.M) or f", {option}" in text, option
    listed = re.findall(r"^  (--\w+)", text, re.M)
    assert len(listed) == len(set(listed))  # each once
    assert {f"--{key}" for key in COMMON_TRAINING_KEYS} & set(listed)


def test_help_of_a_command_without_trainer_has_no_help_all(capsys):
    text = printed_help(capsys, "train_tokenizer", "--help")
    assert "--help-all" not in text and "hfpipe's TokenizerArguments" in headings(text)
