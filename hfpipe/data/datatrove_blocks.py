"""The datatrove blocks and stages of ``engine: datatrove`` (imported only once datatrove is installed).

hfpipe's own blocks are the built-in engine's steps written as datatrove ``PipelineStep``s (reader, malformed,
normalize, length, counts), plus two MinHash stages adapted to the built-in engine's rule: signatures over its
shingles, and clusters confirmed by the estimated Jaccard similarity with the first document kept. Exact dedup,
MinHash bucketing and filtering, the quality filters and the writers are datatrove's own.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, IterableDataset
from datasets.distributed import split_dataset_by_node
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup import ExactDedupFilter, ExactDedupSignature, ExactFindDedups
from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import (
    C4BadWordsFilter,
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.formatters.base import BaseFormatter
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.word_tokenizers import WordTokenizer

from hfpipe.data.args import DataArguments
from hfpipe.data.cleaning import _shingles, normalize_text

COUNT = "📊 - COUNT"


class SourceReader(PipelineStep):
    """Each task reads a contiguous slice of a ``text`` dataset loaded by hfpipe's loader (a stream is split by
    ``split_dataset_by_node``). A document carries its task in metadata ``task`` (``rank`` would be put into
    the writers' file names)."""

    type = "📖 - READER"
    name = "hfpipe source"

    def __init__(self, dataset: Dataset | IterableDataset):
        super().__init__()
        self.dataset = dataset

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if isinstance(self.dataset, IterableDataset):
            texts = (
                ex["text"] for ex in split_dataset_by_node(self.dataset, rank=rank, world_size=world_size)
            )
        else:  # rows [n * rank / world_size, n * (rank + 1) / world_size): empty when tasks > rows
            n = len(self.dataset)
            part = self.dataset.select(range(n * rank // world_size, n * (rank + 1) // world_size))
            texts = (t for batch in part.iter(batch_size=1000) for t in batch["text"])
        for i, text in enumerate(texts):
            yield Document(text=text, id=f"{rank}/{i}", metadata={"task": rank})


class RankReader(PipelineStep):
    """Task ``rank`` reads back the ``{rank:05d}.parquet`` that task ``rank`` of an earlier stage wrote."""

    type = "📖 - READER"
    name = "hfpipe stage output"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        path = os.path.join(self.folder, f"{rank:05d}.parquet")
        if not os.path.exists(path):  # the task had no document left
            return
        i = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1000, columns=["text"]):
            for text in batch.column(0).to_pylist():
                yield Document(text=text, id=f"{rank}/{i}", metadata={"task": rank})
                i += 1


class Tally(PipelineStep):
    """Counts the documents and characters that pass: the cleaning report's ``docs_left``/``chars_left``."""

    type = COUNT

    def __init__(self, label: str):
        self.name = label
        super().__init__()

    def run(self, data, rank: int = 0, world_size: int = 1):
        for doc in data:
            self.stat_update("docs")
            if isinstance(doc.text, str):
                self.stat_update("chars", value=len(doc.text))
            yield doc


class DropMalformed(BaseFilter):
    name = "malformed"

    def filter(self, doc) -> bool:
        return isinstance(doc.text, str)


class Normalize(BaseFormatter):
    """The built-in engine's :func:`normalize_text`: control/invalid characters out, then a normal form."""

    name = "normalize"

    def __init__(self, form: str | None):
        super().__init__()
        self.form = form

    def format(self, text: str) -> str:
        return normalize_text(text, self.form)


class Length(BaseFilter):
    name = "length"

    def __init__(self, lo: int, hi: int | None):
        super().__init__()
        self.lo, self.hi = lo, hi

    def filter(self, doc) -> bool:
        return self.lo <= len(doc.text) and (self.hi is None or len(doc.text) <= self.hi)


class NoWords(WordTokenizer):
    """Stands in for the language word tokenizer (spaCy) that MinHash stage 1 loads but :class:`Signature`
    never calls."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


class Signature(MinhashDedupSignature):
    """datatrove's MinHash stage 1 over the built-in engine's shingles (word 5-grams of the lower-cased text;
    a shorter document is one shingle), also writing each document's whole signature to ``full/{rank}.sig``
    (one row per document, in order) for :class:`ConfirmedCluster`."""

    def get_shingles(self, text: str) -> np.ndarray:
        hashes = [self._hash_func(s) for s in _shingles(text)]  # bytes: xxhash >= 4 refuses str
        return np.array(hashes, dtype=np.uint64).reshape(-1, 1)

    def get_signature(self, shingles: np.ndarray) -> list[list[int]]:
        signature = super().get_signature(shingles)
        self._full.write(np.asarray(signature, dtype=np.uint64).tobytes())
        return signature

    def run(self, data, rank: int = 0, world_size: int = 1):
        # every document has a shingle, so row i of full/ is document i of this task
        with self.output_folder.open(f"full/{rank:05d}.sig", mode="wb") as self._full:
            super().run(data, rank, world_size)


class ConfirmedCluster(MinhashDedupCluster):
    """MinHash stage 3 with the built-in engine's rule: a candidate pair from the LSH bands is a duplicate only
    when its estimated Jaccard similarity (the share of equal signature values, from the memory-mapped
    ``full/`` rows) reaches ``threshold``, and the first document of each cluster, in corpus order, is kept.
    Writes the ``.remove`` files that datatrove's stage 4 reads."""

    def __init__(self, input_folder: str, output_folder: str, signatures: str, threshold: float, config):
        super().__init__(input_folder, output_folder, config=config)
        self.signatures, self.threshold = signatures, threshold

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        width = self.config.num_buckets * self.config.hashes_per_bucket
        rows = {}  # task -> its signatures, memory-mapped

        def signature(task: int, doc: int) -> np.ndarray:
            if task not in rows:
                rows[task] = np.memmap(os.path.join(self.signatures, f"{task:05d}.sig"), np.uint64, "r")
            return rows[task][doc * width : (doc + 1) * width]

        parent: dict[tuple[int, int], tuple[int, int]] = {}

        def root(x):
            while parent.get(x, x) != x:
                parent[x] = parent.get(parent[x], parent[x])  # path halving
                x = parent[x]
            return x

        with self.track_time():
            for name in self.input_folder.list_files(glob_pattern="*.dups"):
                with self.input_folder.open(name, "rb") as fh:
                    pairs = np.frombuffer(fh.read(), dtype="<u4").reshape(-1, 4)
                for f1, d1, f2, d2 in pairs.tolist():
                    a, b = root((f1, d1)), root((f2, d2))
                    if a == b:
                        continue
                    self.stat_update("candidates")
                    if np.mean(signature(f1, d1) == signature(f2, d2)) >= self.threshold:
                        self.stat_update("confirmed")
                        parent[max(a, b)] = min(a, b)  # a root is its cluster's first document
            with self.output_folder.get_output_file_manager(mode="wb") as out:
                for task, doc in sorted(x for x in parent if root(x) != x):
                    out.write(f"{task:06d}.remove", struct.pack("<I", doc))
                    self.stat_update("to_remove")


class LocalBadWords(C4BadWordsFilter):
    """C4's bad-words filter reading the English list from a local file instead of downloading it."""

    def __init__(self, path: str):
        super().__init__(default_language="en")
        self.path = path

    def _get_badwords(self, lang: str):
        if lang not in self._badwords_regex:
            with open(self.path, encoding="utf-8") as fh:
                words = sorted({w.strip() for w in fh if w.strip()})
            pattern = "|".join(re.escape(w) for w in words)
            self._badwords_regex[lang] = re.compile(rf"(?:\W|^)({pattern})(?:\W|$)")
        return self._badwords_regex[lang]


def quality_filter(name: str, data_args: DataArguments) -> BaseFilter:
    """datatrove's filter ``name`` with the settings FineWeb ran it with (English)."""
    if name == "gopher_repetition":
        return GopherRepetitionFilter()
    if name == "gopher_quality":
        return GopherQualityFilter()
    if name == "c4":
        return C4QualityFilter(filter_no_terminal_punct=False)
    if name == "fineweb":
        return FineWebQualityFilter()
    return LocalBadWords(data_args.c4_badwords_file)


def _text_bytes(doc) -> bytes:
    return doc.text.encode("utf-8")


def _earlier_task_first(doc) -> int:
    # datatrove keeps the copy of highest priority, then of lowest index within its task: with contiguous
    # slices, the copy from the earlier task is the earlier one in the corpus
    return 65535 - doc.metadata["task"]


def _text_only(self, document) -> dict:
    return {"text": document.text}


def _writer(folder: Path) -> ParquetWriter:
    # one file per task, named by its rank alone (no size split), holding only the text
    schema = pa.schema([("text", pa.string())])
    return ParquetWriter(str(folder), adapter=_text_only, max_file_size=-1, schema=schema)


def build_stages(
    source_ds, data_args: DataArguments, work: Path, tasks: int, bands: tuple[int, int] | None
) -> list[tuple[str, list, int]]:
    """The pipelines as (stage name, blocks, tasks), in order, over ``source_ds`` (the loaded ``text``
    dataset), with intermediate files in ``work``; ``bands`` = (bands, rows) of the MinHash LSH."""
    read = [SourceReader(source_ds), Tally("input"), DropMalformed(), Tally("malformed"),
            Normalize(data_args.normalize), Tally("normalize"),
            Length(data_args.min_chars, data_args.max_chars), Tally("length")]  # fmt: skip
    for name in data_args.quality_filters or []:
        read += [quality_filter(name, data_args), Tally(name)]
    read.append(_writer(work / "clean"))
    stages, drop_exact = [("read", read, tasks)], []
    if data_args.dedup:
        config = ExactDedupConfig(content_getter=_text_bytes, document_priority=_earlier_task_first)
        sigs, dups = str(work / "exact/sigs"), str(work / "exact/dups")
        read.append(ExactDedupSignature(sigs, config, finder_workers=tasks))
        stages.append(("exact", [ExactFindDedups(sigs, dups, config)], tasks))
        drop_exact = [ExactDedupFilter(dups, config), Tally("exact dedup")]
    write = [RankReader(str(work / "clean")), *drop_exact]
    if data_args.near_dedup:
        config = MinhashConfig(n_grams=5, num_buckets=bands[0], hashes_per_bucket=bands[1], seed=1)
        sigs, buckets, remove = (str(work / "minhash" / d) for d in ("sigs", "buckets", "remove"))
        sign = [
            RankReader(str(work / "clean")),
            *drop_exact,
            Signature(sigs, config=config, language=NoWords()),
        ]
        cluster = ConfirmedCluster(buckets, remove, f"{sigs}/full", data_args.near_dedup_threshold, config)
        stages += [("minhash", sign, tasks),
                   ("buckets", [MinhashDedupBuckets(sigs, buckets, config=config)], bands[0]),
                   ("cluster", [cluster], 1)]  # fmt: skip
        write += [MinhashDedupFilter(remove), Tally("near dedup")]
    if len(write) > 1:
        stages.append(("write", [*write, _writer(work / "final")], tasks))
    return stages
