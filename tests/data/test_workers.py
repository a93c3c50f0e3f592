import os

from datasets import Dataset

from hfpipe.data.workers import available_cores, resolve_num_proc


def test_num_proc_defaults_to_the_cores_available():
    assert available_cores() == len(os.sched_getaffinity(0))
    ds = Dataset.from_dict({"text": ["some text"] * 100})
    cores = available_cores()
    assert resolve_num_proc(None, ds, bytes_per_proc=1) == (cores if cores > 1 else None)  # a big corpus
    assert resolve_num_proc(None, ds) is None  # a few KB: a process pool would cost more than it saves
    assert resolve_num_proc(3, ds) == 3 and resolve_num_proc(1, ds) is None  # preprocessing_num_workers
    assert resolve_num_proc(8, ds.select(range(2))) == 2  # never more processes than rows
    assert resolve_num_proc(4, ds.to_iterable_dataset()) is None  # a stream has no num_proc
