"""Smoke test of bench_classifier.py without training: the recipe commands it builds parse with the recipes'
own ARGUMENTS, and its pretraining corpus leaves the validation and test texts out."""

import sys

import pytest

from ..conftest import import_script


@pytest.fixture(scope="module")
def bench():
    yield import_script("benchmarks/bench_classifier.py")
    sys.modules.pop("bench_classifier", None)


@pytest.mark.parametrize("bf16", ["auto", "false"])
def test_commands_parse_with_the_recipes_arguments(bench, tmp_path, bf16):
    pretrained = tmp_path / "pretrained"
    commands = [bench.pretrain_command(tmp_path / "corpus.txt", pretrained, bf16)]
    commands += [
        bench.finetune_command(name, pretrained, str(tmp_path / "sms.tsv"), tmp_path / name, bf16)
        for name in bench.STRATEGIES
    ]
    bench.check_commands(commands)  # raises on a flag a recipe does not know
    assert ("--bf16" in commands[0]) == (bf16 != "auto")


def test_check_commands_names_an_unknown_flag(bench, tmp_path):
    command = bench.pretrain_command(tmp_path / "corpus.txt", tmp_path / "out", "auto") + [
        "--no_such_flag",
        "1",
    ]
    with pytest.raises(ValueError, match="no_such_flag"):  # ConfigError is a ValueError too
        bench.check_commands([command])


def test_corpus_leaves_held_out_texts_out(bench, tmp_path):
    rows = [("spam" if i % 3 == 0 else "ham", f"message number {i} " + "x" * (i % 7)) for i in range(120)]
    data = tmp_path / "sms.tsv"
    data.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    stats = bench.write_corpus(str(data), corpus)
    lines = corpus.read_text(encoding="utf-8").splitlines()
    assert stats["messages"] == len(lines) == 120 - stats["held_out"]
    assert stats["held_out"] > 0 and not any(line in ("ham", "spam") for line in lines)
