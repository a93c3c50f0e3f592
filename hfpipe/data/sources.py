"""One entry point for text corpora: a Hub dataset id, a local file, a directory or a glob."""

from __future__ import annotations

import codecs
import glob
import json
import logging
import os
from pathlib import Path

import datasets
from datasets import Dataset, IterableDataset, load_dataset

from hfpipe.data.args import DataArguments
from hfpipe.hub import check_hub_name, looks_local

logger = logging.getLogger(__name__)

# file suffix -> datasets packaged builder
BUILDERS = {
    ".txt": "text", ".text": "text", ".md": "text",
    ".jsonl": "json", ".json": "json", ".ndjson": "json",
    ".csv": "csv", ".tsv": "csv",
    ".parquet": "parquet",
}  # fmt: skip
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")


def file_suffix(path: str) -> str:
    """The lower-case data suffix of ``path``, ignoring a compression suffix (".jsonl" for "a.jsonl.gz")."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def resolve_files(source: str) -> list[str] | None:
    """Local files named by ``source`` (file, directory or glob); None when it is not a local path."""
    if any(ch in source for ch in "*?["):
        files = sorted(f for f in glob.glob(source, recursive=True) if os.path.isfile(f))
        if not files:
            raise FileNotFoundError(
                f"glob {source!r} matches no files; check the pattern and the working directory"
            )
        return files
    if os.path.isdir(source):
        files = sorted(
            str(p) for p in Path(source).rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
            and file_suffix(str(p)) in BUILDERS
        )  # fmt: skip
        if not files:
            raise FileNotFoundError(
                f"directory {source!r} holds no {'/'.join(sorted(set(BUILDERS)))} files; point at a data directory"
            )
        return files
    if os.path.isfile(source):
        return [source]
    if file_suffix(source) in BUILDERS or looks_local(source) or source.endswith("/"):
        raise FileNotFoundError(
            f"data file {source!r} does not exist; check the path (relative to {os.getcwd()})"
        )
    check_hub_name(source, "dataset", "dataset")  # a Hub dataset id: cached, or the Hub must answer
    return None


def _format(path: str) -> str | None:
    suffix = file_suffix(path)
    return "tsv" if suffix == ".tsv" else BUILDERS.get(suffix)  # csv and tsv differ in their separator


def check_one_format(source: str, files: list[str]) -> None:
    """ValueError naming the odd files when ``files`` are not all one readable format (text, json, csv, tsv
    or parquet)."""
    groups: dict[str | None, list[str]] = {}
    for f in files:
        groups.setdefault(_format(f), []).append(f)
    if len(groups) == 1 and None not in groups:
        return
    main = max((k for k in groups if k is not None), key=lambda k: len(groups[k]), default=None)
    odd = [f for k, fs in groups.items() if k != main for f in fs]
    names = ", ".join(odd[:5]) + (f" and {len(odd) - 5} more" if len(odd) > 5 else "")
    kind = f"{len(groups[main])} {main} file(s)" if main else "no readable file"
    suffix = file_suffix(groups[main][0]) if main else ".txt"
    example = os.path.join(source if os.path.isdir(source) else "corpus", "**", f"*{suffix}")
    raise ValueError(
        f"{source!r} mixes formats: {kind}, and {len(odd)} other(s): {names}; keep one format per source: move "
        f"the odd files out, or pick one format with a glob such as {example!r}"
    )


def check_utf8(path: str, chunk_size: int = 16 << 20) -> None:
    """Raise a ValueError naming ``path`` and the byte offset of the first invalid UTF-8 sequence."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{path}: bytes at offset {offset + err.start} are not valid UTF-8 ({err.reason}); re-encode "
                    "the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in > out`) or remove the bad bytes"
                ) from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{path}: the file ends inside a UTF-8 sequence ({err.reason}); re-encode it as UTF-8"
            ) from None


def load_raw_dataset(
    source: str,
    streaming: bool = False,
    split: str = "train",
    config_name: str | None = None,
    column_names: list[str] | None = None,
    sample_by: str = "document",
) -> Dataset | IterableDataset:
    """Load ``source`` (Hub id, local file, directory or glob) with all its columns.

    Local files become memory-mapped Arrow (or a stream with ``streaming=True``); ``sample_by`` says
    whether a .txt file is one document, one per paragraph or one per line; ``column_names`` names the
    columns of a csv/tsv without a header row.
    """
    if not source:
        raise ValueError("no data source given; set dataset_name to a Hub id, a file, a directory or a glob")
    files = resolve_files(str(source))
    if files is None:
        return load_dataset(source, config_name, split=split, streaming=streaming)
    check_one_format(source, files)
    builder = BUILDERS[file_suffix(files[0])]
    kwargs = {}
    if builder == "text":
        if sample_by not in ("document", "paragraph", "line"):
            raise ValueError(f"sample_by={sample_by!r}; use 'document', 'paragraph' or 'line'")
        kwargs = {"sample_by": sample_by, "keep_linebreaks": True}
    elif builder == "csv":
        if file_suffix(files[0]) == ".tsv":
            kwargs = {"sep": "\t", "quoting": 3}  # QUOTE_NONE: tabs delimit, quotes are text
        if column_names:
            kwargs["column_names"] = list(column_names)
    if builder != "parquet":
        for f in files:
            if not f.endswith(COMPRESSIONS):
                check_utf8(f)
    if all(os.path.getsize(f) == 0 for f in files):
        raise ValueError(
            f"{source!r}: the corpus is empty (every file has 0 bytes); point at files with text"
        )
    try:
        return load_dataset(builder, data_files=files, split="train", streaming=streaming, **kwargs)
    except (datasets.exceptions.DatasetGenerationError, ValueError) as err:
        raise read_error(source, files, err) from err


def read_error(source: str, files: list[str], err: Exception) -> ValueError:
    """Why ``files`` could not be read: where a JSON file breaks or which record is not an object, else the
    reason datasets gives."""
    if all(BUILDERS.get(file_suffix(f)) == "json" for f in files):
        check_json_files(files)
    return ValueError(f"{source!r} could not be read: {err.__cause__ or err}")


def check_json_files(files: list[str]) -> None:
    """Raise a ValueError naming the file and where its JSON breaks, or saying it holds no records."""
    for path in files:
        if path.endswith(COMPRESSIONS):
            continue
        text = Path(path).read_text(encoding="utf-8")
        lines = text.splitlines() if file_suffix(path) == ".jsonl" else [text]
        records = 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                where = f"line {number}" if len(lines) > 1 else f"line {err.lineno}, column {err.colno}"
                raise ValueError(f"{path} is not valid JSON at {where}: {err.msg}; fix the file") from None
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items, start=1):
                if not isinstance(item, dict):
                    where = f"line {number}" if len(lines) > 1 else f"record {index}"
                    raise ValueError(f"{path}: {where} is not an object but {type(item).__name__} {item!r:.40}; "
                                     "each record must be an object of named fields")  # fmt: skip
            records += len(items)
        if records == 0:
            empty = "is an empty list" if text.strip().startswith("[") else "holds no records"
            raise ValueError(f"{path} {empty}; give it a list of objects (or one object per line)")


def load_text_dataset(
    source: str,
    text_column: str = "text",
    streaming: bool = False,
    split: str = "train",
    config_name: str | None = None,
    column_names: list[str] | None = None,
    sample_by: str = "document",
) -> Dataset | IterableDataset:
    """Load ``source`` as a dataset with a single ``text`` column (taken from ``text_column``)."""
    ds = load_raw_dataset(source, streaming, split, config_name, column_names, sample_by)
    return _select_text(ds, source, text_column, streaming)


def _select_text(ds, source: str, text_column: str, streaming: bool):
    columns = ds.column_names
    if not columns:  # a stream whose features are unknown until read, or an empty list
        first = next(iter(ds.take(1)), None)
        if first is None:
            raise ValueError(f"{source!r}: the corpus is empty (no documents); point at data with text")
        columns = list(first)
    if text_column not in columns:
        raise ValueError(
            f"{source!r} has no column {text_column!r}; its columns are {columns}. Set text_column to one of them"
            + (
                " (or column_names for a csv/tsv without header)"
                if str(source).endswith((".csv", ".tsv"))
                else ""
            )
        )
    ds = ds.select_columns([text_column])
    if text_column != "text":
        ds = ds.rename_column(text_column, "text")
    feature = (ds.features or {}).get("text")
    if feature is not None and getattr(feature, "dtype", "string") not in ("string", "large_string"):
        raise ValueError(
            f"{source!r}: column {text_column!r} holds {getattr(feature, 'dtype', feature)}, not text; choose a text column"
        )
    if not streaming and len(ds) == 0:
        raise ValueError(f"{source!r}: the corpus is empty (no documents); point at data with text")
    return ds


# DataArguments fields that change the cleaned, split corpus (the rest only change how it is packed).
CORPUS_FIELDS = ("text_column", "column_names", "sample_by", "normalize", "min_chars", "max_chars", "dedup",
                 "near_dedup", "near_dedup_threshold", "validation_size", "split_seed",
                 "engine", "quality_filters", "c4_badwords_file")  # fmt: skip


def corpus_fingerprint(script_args, data_args: DataArguments) -> dict:
    """What the cleaned, split corpus depends on (JSON-ready): the source's identity (local files with their
    sizes and modification times, or the Hub id, configuration and split) and the reading, cleaning and
    split settings."""
    source = script_args.dataset_name
    files = resolve_files(str(source)) if source else None
    if files is None:
        identity = {
            "hub": source,
            "config": script_args.dataset_config,
            "split": script_args.dataset_train_split,
        }
    else:
        identity = {"files": [[os.path.abspath(f), *_size_and_mtime(f)] for f in files]}
    fingerprint = {"source": identity, "streaming": script_args.dataset_streaming}
    fingerprint.update({name: getattr(data_args, name) for name in CORPUS_FIELDS})
    return json.loads(json.dumps(fingerprint))  # tuples become lists, as when read back


def _size_and_mtime(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns
