"""Cleaning: Unicode normalization, control/invalid characters, length filters, exact and MinHash dedup.

Every step is a batched ``map``/``filter`` over Arrow (cached, memory-bounded, ``num_proc``-parallel);
the dedup decisions need one sequential pass over a small hash/signature column.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, IterableDataset
from datasketch import LeanMinHash, MinHash, MinHashLSH

from hfpipe.data.args import DataArguments
from hfpipe.data.workers import TOKENIZE_BYTES_PER_PROC as MINHASH_BYTES_PER_PROC
from hfpipe.data.workers import resolve_num_proc

logger = logging.getLogger(__name__)

# C0/C1 controls except \t \n \r, lone surrogates, the replacement character and non-characters.
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffd\ufdd0-\ufdef\ufffe\uffff]")
_WORD = re.compile(r"\w+")
SCHEME = "affine32"  # datasketch 2 permutation scheme; signatures are stored as uint32
# LSH band weights (false positive, false negative): recall first, since every candidate is then confirmed by
# its estimated Jaccard. datasketch's default (0.5, 0.5) gives 9 bands x 13 rows at 0.8, which finds a pair at
# Jaccard 0.85 only 69 % of the time; 16 x 8 finds it 99 % of the time.
LSH_WEIGHTS = (0.05, 0.95)


def normalize_text(text: str, form: str | None = "NFC") -> str:
    """Unicode-normalize ``text`` and remove control and invalid characters (tabs and newlines stay)."""
    text = _INVALID.sub("", text)
    return unicodedata.normalize(form, text) if form else text


@dataclass
class CleaningStep:
    """What one step removed, and how fast it ran over its input (None when unknown: streaming)."""

    name: str
    docs_removed: int | None
    chars_removed: int | None
    docs_left: int | None
    chars_left: int | None
    seconds: float | None = None
    docs_per_s: float | None = None
    chars_per_s: float | None = None
    tokens_per_s: float | None = None


def step_rates(seconds: float, docs: int | None, chars: int | None = None, tokens: int | None = None) -> dict:
    """``CleaningStep`` timing fields for a step that took ``seconds`` over ``docs``/``chars``/``tokens``."""
    rate = lambda n: None if n is None else round(n / max(seconds, 1e-9), 1)  # noqa: E731
    return {"seconds": round(seconds, 3), "docs_per_s": rate(docs), "chars_per_s": rate(chars),
            "tokens_per_s": rate(tokens)}  # fmt: skip


def _stats(ds) -> tuple[int | None, int | None]:
    if isinstance(ds, IterableDataset):
        return None, None
    chars = 0
    for table in ds.with_format("arrow").iter(batch_size=50_000):
        chars += pc.sum(pc.utf8_length(table["text"])).as_py() or 0
    return len(ds), chars


def format_report(steps: list[CleaningStep]) -> str:
    """A small text table of the cleaning report: what each step removed, its time and its rates."""
    fmt = "{:<24} {:>12} {:>13} {:>11} {:>15} {:>9} {:>10} {:>13} {:>11}"
    head = ("step", "docs removed", "chars removed", "docs left", "chars left", "seconds", "docs/s", "chars/s",
            "tokens/s")  # fmt: skip
    rows = [head, *([_cell(v) for v in vars(s).values()] for s in steps)]
    return "\n".join(fmt.format(*row) for row in rows)


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v < 100:
        return f"{v:,.2f}"
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def _doc_hash(text: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True
    )


def _dedup_stream(ds):
    seen: set[int] = set()  # fresh for every pass over the stream
    for ex in ds:
        h = _doc_hash(ex["text"])
        if h not in seen:
            seen.add(h)
            yield ex


def _shingles(text: str, n: int = 5) -> set[bytes]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


def minhash_signatures(texts: list[str], num_perm: int = 128) -> list[np.ndarray]:
    """MinHash signatures (word 5-gram shingles) of ``texts``."""
    return [
        m.hashvalues
        for m in MinHash.bulk([list(_shingles(t)) for t in texts], num_perm=num_perm, scheme=SCHEME)
    ]


def _near_dup_keep(signatures, lookup, threshold: float, num_perm: int) -> list[int]:
    """Indices to keep: the first document of each group of near duplicates."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    keep = []
    for i, hv in enumerate(signatures):
        m = LeanMinHash(seed=1, hashvalues=hv, scheme=SCHEME)
        # LSH banding returns candidates; confirm with the estimated Jaccard similarity
        if not any(np.mean(lookup(c) == hv) >= threshold for c in lsh.query(m)):
            lsh.insert(i, m, check_duplication=False)
            keep.append(i)
    return keep


def clean_dataset(
    ds: Dataset | IterableDataset,
    data_args: DataArguments | None = None,
    source: str = "corpus",
    num_perm: int = 128,
) -> tuple[Dataset | IterableDataset, list[CleaningStep]]:
    """Clean a ``text`` dataset as ``data_args`` says (normalize, min/max_chars, dedup, near_dedup);
    returns it and one :class:`CleaningStep` per step (logged as a table).

    Raises ValueError when nothing is left, naming ``source`` and the step that emptied it.
    """
    args = data_args or DataArguments()
    # the lambdas below capture plain values, not ``args``: datasets' cache keys hash what they capture
    form, lo = args.normalize, args.min_chars
    hi = args.max_chars if args.max_chars is not None else float("inf")
    streaming = isinstance(ds, IterableDataset)
    num_proc = resolve_num_proc(args.preprocessing_num_workers, ds)
    kw = {} if streaming else {"num_proc": num_proc, "desc": None}
    steps: list[CleaningStep] = []
    docs, chars = _stats(ds)
    steps.append(CleaningStep("input", 0, 0, docs, chars))
    started = [time.perf_counter()]  # when the current step began (the previous one's statistics excluded)

    def record(name, new):
        prev = steps[-1]
        seconds = time.perf_counter() - started[0]
        d, c = _stats(new)
        removed = (prev.docs_left - d, prev.chars_left - c) if d is not None else (None, None)
        rates = {} if streaming else step_rates(seconds, prev.docs_left, prev.chars_left)
        steps.append(CleaningStep(name, *removed, d, c, **rates))
        started[0] = time.perf_counter()
        if d == 0:
            raise ValueError(
                f"{source}: no documents left after cleaning step {name!r} ({prev.docs_left:,} before); "
                "loosen min_chars/max_chars or check text_column and the data"
            )
        return new

    ds = record(
        "malformed",
        ds.filter(
            lambda b: [isinstance(t, str) for t in b["text"]], batched=True, **_desc(kw, "drop malformed")
        ),
    )
    ds = record(
        "normalize",
        ds.map(
            lambda b: {"text": [normalize_text(t, form) for t in b["text"]]},
            batched=True,
            **_desc(kw, "normalize"),
        ),
    )
    ds = record(
        "length",
        ds.filter(
            lambda b: [lo <= len(t) <= hi for t in b["text"]],
            batched=True,
            **_desc(kw, "length filter"),
        ),
    )
    if args.dedup:
        if streaming:
            ds = IterableDataset.from_generator(_dedup_stream, features=ds.features, gen_kwargs={"ds": ds})
        else:
            hashed = ds.map(
                lambda b: {"h": [_doc_hash(t) for t in b["text"]]},
                batched=True,
                remove_columns=["text"],
                **_desc(kw, "hash"),
            )
            _, first = np.unique(hashed.with_format("arrow")[:]["h"].to_numpy(), return_index=True)
            ds = ds.select(np.sort(first)) if len(first) < len(ds) else ds
        ds = record("exact dedup", ds)
    if args.near_dedup:
        if streaming:
            raise ValueError(
                "near_dedup needs the whole corpus at once; set dataset_streaming=false or near_dedup=false"
            )
        # MinHash costs about what tokenizing does per byte: a pool pays off on smaller corpora
        minhash_kw = {
            **kw,
            "num_proc": resolve_num_proc(args.preprocessing_num_workers, ds, MINHASH_BYTES_PER_PROC),
        }
        sigs = ds.map(
            lambda b: {"sig": minhash_signatures(b["text"], num_perm)},
            batched=True,
            remove_columns=["text"],
            **_desc(minhash_kw, "minhash"),
        )
        rows = (row for b in sigs.with_format("numpy").iter(batch_size=10_000) for row in b["sig"])
        table = sigs.with_format("numpy")
        keep = _near_dup_keep(rows, lambda i: table[int(i)]["sig"], args.near_dedup_threshold, num_perm)
        ds = record("near dedup", ds.select(keep) if len(keep) < len(ds) else ds)
    if not streaming:
        logger.info("cleaning report for %s:\n%s", source, format_report(steps))
    return ds, steps


def _desc(kw: dict, desc: str) -> dict:
    return {**kw, "desc": desc} if "desc" in kw else kw
