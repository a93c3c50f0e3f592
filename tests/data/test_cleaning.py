import pytest
from datasets import Dataset

from hfpipe.data import DataArguments, clean_dataset, format_report, normalize_text, split_dataset

BASE = "the cat sat on the mat and looked at the bird in the tree while the sun went down over the hill"


def test_normalize_text():
    assert normalize_text("cafe\u0301") == "caf\u00e9"  # NFC composes
    assert normalize_text("a\x00b\x07c\x1bd\x7fe\ufffdf") == "abcdef"
    assert normalize_text("keep\ttabs\nand\r\nnewlines") == "keep\ttabs\nand\r\nnewlines"
    assert normalize_text("\ufb01", "NFKC") == "fi" and normalize_text("\ufb01", None) == "\ufb01"
    assert normalize_text("lone \ud800 surrogate") == "lone  surrogate"


def corpus():
    docs = [f"{BASE} number {i} " + " ".join(f"w{i}x{j}" for j in range(30)) for i in range(20)]
    docs += [docs[0], docs[1]]  # exact duplicates
    docs += [docs[2].replace("w2x29", "changed")]  # near duplicate
    docs += ["tiny", None, "bad\x00control " + BASE]
    return Dataset.from_dict({"text": docs})


def test_clean_report():
    ds, steps = clean_dataset(corpus(), DataArguments(min_chars=10, near_dedup=True))
    by = {s.name: s for s in steps}
    assert by["input"].docs_left == 26
    assert by["malformed"].docs_removed == 1
    assert (by["normalize"].docs_removed, by["normalize"].chars_removed) == (0, 1)
    assert by["length"].docs_removed == 1 and by["length"].chars_removed == 4
    assert by["exact dedup"].docs_removed == 2
    assert by["near dedup"].docs_removed == 1
    assert len(ds) == 21 and ds["text"][-1] == "badcontrol " + BASE
    assert "exact dedup" in format_report(steps)


def test_streaming_dedup():
    stream = corpus().filter(lambda t: t is not None, input_columns="text").to_iterable_dataset()
    ds, steps = clean_dataset(stream, DataArguments(min_chars=10))
    assert len(list(ds)) == 22 and steps[-1].docs_left is None


def test_empty_after_cleaning():
    with pytest.raises(ValueError, match="my.txt: no documents left after cleaning step 'length'.*min_chars"):
        clean_dataset(Dataset.from_dict({"text": ["a", "b"]}), DataArguments(min_chars=5), source="my.txt")


def test_dedup_before_split():
    ds = Dataset.from_dict({"text": [f"doc {i % 50}" for i in range(500)]})
    train, val = split_dataset(clean_dataset(ds)[0], 20, seed=0)
    assert len(train) + len(val) == 50 and not set(train["text"]) & set(val["text"])
    # seeded and order-independent: duplicates land in the same split even without dedup
    train2, val2 = split_dataset(ds.shuffle(seed=1), 20, seed=0)
    assert set(val2["text"]) == set(val["text"]) and not set(train2["text"]) & set(val2["text"])
    assert set(split_dataset(ds, 20, seed=1)[1]["text"]) != set(val["text"])


def test_every_step_parallel_and_timed():
    one, steps = clean_dataset(
        corpus(), DataArguments(min_chars=10, near_dedup=True, preprocessing_num_workers=1)
    )
    two, steps2 = clean_dataset(
        corpus(), DataArguments(min_chars=10, near_dedup=True, preprocessing_num_workers=2)
    )
    assert two["text"] == one["text"] and [s.docs_left for s in steps2] == [s.docs_left for s in steps]
    for s in steps2[1:]:  # each step's time and rates over what it read
        assert s.seconds > 0 and s.docs_per_s > 0 and s.chars_per_s > s.docs_per_s, s
    table = format_report(steps2)
    assert table.splitlines()[0].split()[-4:] == ["seconds", "docs/s", "chars/s", "tokens/s"]
