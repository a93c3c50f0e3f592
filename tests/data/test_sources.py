import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import IterableDataset

from hfpipe.data import load_text_dataset

DOCS = ["first document", "second document, with a comma", "third one"]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.txt").write_text("line one\nline two\n\nnew paragraph\n", encoding="utf-8")
    (tmp_path / "d.jsonl").write_text(
        "".join(json.dumps({"body": d, "n": i}) + "\n" for i, d in enumerate(DOCS))
    )
    (tmp_path / "d.json").write_text(json.dumps([{"body": d} for d in DOCS]))
    (tmp_path / "d.csv").write_text("id,body\n" + "".join(f'{i},"{d}"\n' for i, d in enumerate(DOCS)))
    (tmp_path / "d.tsv").write_text("".join(f"ham\t{d}\n" for d in DOCS))
    pq.write_table(pa.table({"body": DOCS}), tmp_path / "d.parquet")
    return tmp_path


def test_txt_sampling(files):
    path = str(files / "a.txt")
    assert load_text_dataset(path)["text"] == ["line one\nline two\n\nnew paragraph\n"]
    assert len(load_text_dataset(path, sample_by="paragraph")) == 2
    assert len(load_text_dataset(path, sample_by="line")) == 4


@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.csv", "d.parquet"])
def test_formats_with_named_column(files, name):
    ds = load_text_dataset(str(files / name), text_column="body")
    assert ds.column_names == ["text"] and ds["text"] == DOCS


def test_tsv_without_header(files):
    ds = load_text_dataset(str(files / "d.tsv"), text_column="msg", column_names=["label", "msg"])
    assert ds["text"] == DOCS


def test_directory_glob_and_streaming(files, tmp_path):
    corpus = tmp_path / "corpus" / "sub"
    corpus.mkdir(parents=True)
    for i, d in enumerate(DOCS):
        (corpus / f"{i}.txt").write_text(d)
    assert sorted(load_text_dataset(str(tmp_path / "corpus"))["text"]) == sorted(DOCS)
    assert sorted(load_text_dataset(str(tmp_path / "corpus/**/*.txt"))["text"]) == sorted(DOCS)
    stream = load_text_dataset(str(files / "d.jsonl"), text_column="body", streaming=True)
    assert isinstance(stream, IterableDataset) and [r["text"] for r in stream] == DOCS


def test_shared_files(shared_data):
    sms = load_text_dataset(str(shared_data / "sms_spam_collection.tsv"), column_names=["label", "text"])
    assert len(sms) == 5574
    assert len(load_text_dataset(str(shared_data / "instruction-data.json"), text_column="output")) == 1100


def test_errors(files, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_text_dataset(str(tmp_path / "missing.txt"))
    with pytest.raises(FileNotFoundError, match="matches no files"):
        load_text_dataset(str(tmp_path / "*.nothing"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="empty_dir"):
        load_text_dataset(str(tmp_path / "empty_dir"))
    with pytest.raises(ValueError, match=r"no column 'content'.*\['body', 'n'\]"):
        load_text_dataset(str(files / "d.jsonl"), text_column="content")
    with pytest.raises(ValueError, match="no column 'content'"):
        load_text_dataset(str(files / "d.jsonl"), text_column="content", streaming=True)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty.txt.*empty"):
        load_text_dataset(str(tmp_path / "empty.txt"))
    (tmp_path / "bad.txt").write_bytes(b"fine text \xff\xfe broken")
    with pytest.raises(ValueError, match=r"bad.txt: bytes at offset 10 are not valid UTF-8.*iconv"):
        load_text_dataset(str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="holds int64, not text"):
        load_text_dataset(str(files / "d.jsonl"), text_column="n")


def test_mixed_formats_name_the_odd_files(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    for i in range(3):
        (corpus / f"{i}.txt").write_text(f"document {i}")
    (corpus / "sub" / "stray.jsonl").write_text('{"text": "x"}\n')
    (corpus / "notes.tsv").write_text("a\tb\n")
    with pytest.raises(ValueError, match=r"mixes formats: 3 text file\(s\), and 2 other\(s\): .*notes.tsv, "
                       r".*stray.jsonl; .*glob such as '.*corpus/\*\*/\*.txt'") as err:  # fmt: skip
        load_text_dataset(str(corpus))
    assert "\n" not in str(err.value)
    assert len(load_text_dataset(str(corpus / "**/*.txt"))) == 3  # the fix the message gives
    (tmp_path / "a.csv").write_text("text\nx\n")
    (tmp_path / "b.tsv").write_text("text\nx\n")
    with pytest.raises(ValueError, match=r"1 csv file\(s\), and 1 other\(s\): .*b.tsv"):  # other separators
        load_text_dataset(str(tmp_path / "*.?sv"))
