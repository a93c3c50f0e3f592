"""How many processes a per-document ``map``/``filter`` gets: every core available, unless the corpus is small."""

from __future__ import annotations

import os

from datasets import Dataset

# Starting a datasets process pool costs ~0.5 s: below this much text per worker, one process is faster.
CLEAN_BYTES_PER_PROC = 16 << 20  # normalize, filter, hash: tens of MB/s per core
TOKENIZE_BYTES_PER_PROC = 2 << 20  # BPE encoding: ~1 MB/s per core


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or Slurm's limit), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_num_proc(requested: int | None, ds, bytes_per_proc: int = CLEAN_BYTES_PER_PROC) -> int | None:
    """``num_proc`` for ``ds.map``: ``requested`` (``preprocessing_num_workers``) when set, else the cores
    available, fewer when ``ds`` holds less than ``bytes_per_proc`` per process. None means no pool (one
    process), and is what a stream (``IterableDataset``, which has no ``num_proc``) always gets."""
    if not isinstance(ds, Dataset):
        return None
    if requested is None:
        requested = min(available_cores(), max(1, ds.data.nbytes // bytes_per_proc))
    requested = min(requested, len(ds))
    return requested if requested > 1 else None


_IMPORT_PID = os.getpid()


def in_forked_worker() -> bool:
    """True in a process forked after this module was imported: a datasets ``map(num_proc>1)`` worker."""
    return os.getpid() != _IMPORT_PID
