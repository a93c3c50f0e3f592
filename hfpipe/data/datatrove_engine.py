"""``engine: datatrove``: the built-in cleaning declared as datatrove pipelines, for corpora past one machine.

The same steps as :func:`hfpipe.data.cleaning.clean_dataset` (malformed rows, Unicode normalization and control
characters, length, exact dedup, MinHash near-dedup), plus datatrove's optional Gopher/C4/FineWeb quality
filters, run by a datatrove executor (local processes, Slurm job arrays or Ray) with everything between stages
on disk, so near-dedup is no longer bounded by memory. Stages (``tasks`` slices of the corpus each):

  read     hfpipe's loader (the built-in engine's documents, each task a contiguous slice) -> malformed ->
           normalize -> length -> quality filters -> clean/ -> exact-dedup hashes
  exact    exact duplicates: the first copy in corpus order is kept, as in the built-in engine
  minhash  clean/ -> drop exact duplicates -> MinHash signatures (the built-in engine's shingles)
  buckets  LSH bands -> near-duplicate pairs (one task per band)
  cluster  pairs -> clusters; all but the first document of each are removed (one task)
  write    clean/ -> drop exact and near duplicates -> final/

final/ is read back in corpus order as a memory-mapped ``Dataset``: the built-in split and tokenize+pack follow.
A rerun with the same settings resumes (datatrove skips completed tasks); ``pip install "hfpipe[datatrove]"``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import datasets
from datasets import Dataset, load_dataset
from datasketch import MinHashLSH

from hfpipe.data.args import DataArguments
from hfpipe.data.cleaning import LSH_WEIGHTS, CleaningStep, format_report, step_rates
from hfpipe.data.sources import corpus_fingerprint, load_text_dataset

logger = logging.getLogger(__name__)

PIP = 'pip install "hfpipe[datatrove]"'
EXECUTORS = ("local", "slurm", "ray")
# filters that tokenize words with spaCy's blank English pipeline (a package; nothing is downloaded)
SPACY_FILTERS = ("gopher_repetition", "gopher_quality", "c4", "fineweb")
QUALITY_FILTERS = (*SPACY_FILTERS, "c4_badwords")
BADWORDS_URL = "https://raw.githubusercontent.com/LDNOOBW/List-of-Dirty-Naughty-Obscene-and-Otherwise-Bad-Words/master/en"
NUM_PERM = 128  # as the built-in engine
SLURM_POLL_SECONDS = 30


def require_datatrove() -> None:
    """ImportError with the pip command when datatrove is not installed."""
    try:
        import datatrove  # noqa: F401
    except ImportError:
        raise ImportError(f"engine: datatrove needs the datatrove extra: {PIP}") from None


def check_settings(data_args: DataArguments) -> None:
    """ValueError (one line) for settings the datatrove engine cannot run, before anything is read."""
    if data_args.executor not in EXECUTORS:
        raise ValueError(f"executor={data_args.executor!r}; use one of {', '.join(EXECUTORS)}")
    for name in ("tasks", "workers"):
        value = getattr(data_args, name)
        if value is not None and not 1 <= value <= 65534:
            raise ValueError(f"{name}={value} must be between 1 and 65534")
    filters = list(data_args.quality_filters or [])
    unknown = [f for f in filters if f not in QUALITY_FILTERS]
    if unknown:
        raise ValueError(f"quality_filters {unknown} are not known; use some of {', '.join(QUALITY_FILTERS)}")
    spacy = [f for f in filters if f in SPACY_FILTERS]
    if spacy and importlib.util.find_spec("spacy") is None:
        raise ImportError(f"quality_filters {spacy} split words with spaCy, which is not installed: {PIP}")
    if "c4_badwords" in filters:
        path = data_args.c4_badwords_file
        if not path:
            raise ValueError(
                "quality_filter c4_badwords needs C4's word list, which datatrove would download: save "
                f"{BADWORDS_URL} once and set c4_badwords_file to its path"
            )
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"c4_badwords_file {path!r} does not exist; point it at C4's English word list"
            )
    if data_args.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ImportError('executor: ray needs Ray: pip install "datatrove[ray]"')
    _check_options(data_args)


def _executor_class(kind: str):
    if kind == "local":
        from datatrove.executor import LocalPipelineExecutor as cls
    elif kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor as cls
    else:
        from datatrove.executor.ray import RayPipelineExecutor as cls
    return cls


# set by hfpipe for each stage: not options a user passes
_MANAGED = {"pipeline", "tasks", "workers", "logging_dir", "depends", "job_name", "skip_completed"}


def _check_options(data_args: DataArguments) -> None:
    cls = _executor_class(data_args.executor)
    options = dict(data_args.executor_options or {})
    allowed = set(inspect.signature(cls.__init__).parameters) - _MANAGED - {"self"}
    bad = sorted(set(options) - allowed)
    if bad:
        raise ValueError(
            f"executor_options {bad} are not settings of datatrove's {cls.__name__}; use some of {sorted(allowed)}"
        )
    if data_args.executor == "slurm" and not {"partition", "time"} <= set(options):
        raise ValueError(
            "executor: slurm needs executor_options with partition and time, e.g. {partition: cpu, time: '10:00:00'}"
        )


def lsh_bands(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) of the built-in engine's MinHash LSH at ``threshold``."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    return lsh.b, lsh.r


def _executor(data_args: DataArguments, stage: str, pipeline: list, tasks: int, work: Path, depends=None):
    cls = _executor_class(data_args.executor)
    kwargs = dict(pipeline=pipeline, tasks=tasks, logging_dir=str(work / "logs" / stage))
    if data_args.executor == "slurm":
        kwargs.update(workers=data_args.workers or -1, depends=depends, job_name=f"hfpipe-{stage}")
    else:
        kwargs["workers"] = min(data_args.workers or tasks, tasks)
    if data_args.executor == "local":
        # fork, as datasets' num_proc does: a forkserver worker imports hfpipe (torch, transformers) anew
        # for every stage, ~10 s each on a busy machine
        kwargs["start_method"] = "fork"
    return cls(**{**kwargs, **(data_args.executor_options or {})})


def build_executors(source_ds, data_args: DataArguments, work: Path, tasks: int) -> list[tuple[str, object]]:
    """(stage name, datatrove executor) per stage of :func:`~hfpipe.data.datatrove_blocks.build_stages`; on
    Slurm each ``depends`` on the previous one."""
    from hfpipe.data.datatrove_blocks import build_stages

    bands = lsh_bands(data_args.near_dedup_threshold) if data_args.near_dedup else None
    executors = []
    for stage, pipeline, n in build_stages(source_ds, data_args, work, tasks, bands):
        previous = executors[-1][1] if executors else None
        executors.append((stage, _executor(data_args, stage, pipeline, n, work, previous)))
    return executors


def _incomplete(work: Path, stage: str, tasks: int) -> int:
    done = work / "logs" / stage / "completions"
    return tasks - (len(list(done.iterdir())) if done.is_dir() else 0)


def run_executors(executors: list[tuple[str, object]], data_args: DataArguments, work: Path) -> None:
    """Run the stages in order: locally and on Ray one after the other; on Slurm the chain of job arrays is
    submitted at once and this waits for the last one."""
    if data_args.executor == "slurm":
        executors[-1][1].run()  # submits its dependencies first
        _wait_for_slurm(executors, work)
        return
    if data_args.executor == "local" and set(data_args.quality_filters or []) & set(SPACY_FILTERS):
        from datatrove.utils.word_tokenizers import load_word_tokenizer

        load_word_tokenizer("en").word_tokenize("load spaCy once")  # the forked workers inherit it
    # Ray connects on first use: to RAY_ADDRESS or a running `ray start` cluster, else it starts a local one
    for stage, ex in executors:
        ex.run()
        if (left := _incomplete(work, stage, ex.world_size)) > 0:
            raise RuntimeError(
                f"datatrove stage {stage!r}: {left} task(s) failed; see {work / 'logs' / stage}/logs"
            )


def _wait_for_slurm(executors: list[tuple[str, object]], work: Path) -> None:
    stage, last = executors[-1]
    ids = [str(ex.job_id) for _, ex in executors if ex.job_id not in (None, -1)]
    while _incomplete(work, stage, last.world_size) > 0:
        queued = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True
        )
        # none left: nothing listed, or all forgotten by the controller already ("Invalid job id")
        if (queued.returncode == 0 and not queued.stdout.strip()) or "Invalid job id" in queued.stderr:
            raise RuntimeError(
                f"the Slurm jobs {', '.join(ids)} ended with stage {stage!r} incomplete; see {work / 'logs'} "
                "(the same command again resumes)"
            )
        logger.info("waiting for Slurm jobs %s (stage %s)", ", ".join(ids), stage)
        time.sleep(SLURM_POLL_SECONDS)


# ---- the engine ------------------------------------------------------------------------------------------


def work_dir(script_args, data_args: DataArguments, tasks: int) -> Path:
    """``datatrove_work_dir`` (or a folder in the datasets cache keyed by the settings) holding a record of
    the settings; a folder holding another run's is refused."""
    corpus = corpus_fingerprint(script_args, data_args)
    for name in ("validation_size", "split_seed"):  # the split comes after this engine
        corpus.pop(name)
    settings = {"corpus": corpus, "tasks": tasks, "format": 1,
                "lsh": lsh_bands(data_args.near_dedup_threshold) if data_args.near_dedup else None}  # fmt: skip
    text = json.dumps(settings, sort_keys=True)
    if data_args.datatrove_work_dir:
        work = Path(data_args.datatrove_work_dir)
    else:
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        work = Path(datasets.config.HF_DATASETS_CACHE) / "hfpipe_datatrove" / key
    record = work / "hfpipe_settings.json"
    if record.is_file() and json.dumps(json.loads(record.read_text()), sort_keys=True) != text:
        raise ValueError(
            f"datatrove_work_dir {str(work)!r} holds a run with other settings ({record}); choose another "
            "directory or delete it"
        )
    work.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, record)
    return work


# report rows whose work is spread over blocks of several stages: the blocks named so
DEDUP_BLOCKS = {"exact dedup": "exact-deduplication", "near dedup": "MinHash stage"}


def _stage_stats(work: Path, stage: str) -> list:
    """The ``Stats`` of each block of ``stage``, summed over its tasks (datatrove's ``stats/<rank>.json``)."""
    from datatrove.utils.stats import PipelineStats

    total = PipelineStats()
    for f in sorted((work / "logs" / stage / "stats").glob("*.json")):
        total = total + PipelineStats.from_json(json.loads(f.read_text()))
    return total.stats


def _count(stats, key: str) -> int:
    from datatrove.utils.stats import MetricStats

    value = stats.stats.get(key, 0)  # read back: a number (no spread) or a dict; summed: a MetricStats
    if isinstance(value, (int, float)):
        return int(value)
    return int((value if isinstance(value, MetricStats) else MetricStats.from_dict(value)).total)


def cleaning_report(work: Path, source: str) -> list[CleaningStep]:
    """The built-in engine's report, one :class:`CleaningStep` per step, from the count blocks; a step's time is
    its blocks' time summed over tasks, as datatrove's stats give it. ValueError naming a step that left no
    document."""
    from hfpipe.data.datatrove_blocks import COUNT

    stages = {d.name: _stage_stats(work, d.name) for d in (work / "logs").iterdir() if (d / "stats").is_dir()}
    steps: list[CleaningStep] = []
    for stage in ("read", "write"):
        blocks = stages.get(stage, [])
        for k, block in enumerate(blocks):
            if not block.name.startswith(f"{COUNT}: "):
                continue
            name, prev = block.name.removeprefix(f"{COUNT}: "), steps[-1] if steps else None
            docs, chars = _count(block, "docs"), _count(block, "chars")
            if prev is None:
                steps.append(CleaningStep(name, 0, 0, docs, chars))
                continue
            if name in DEDUP_BLOCKS:
                seconds = sum(
                    b.time_stats.total for bs in stages.values() for b in bs if DEDUP_BLOCKS[name] in b.name
                )
            else:
                seconds = blocks[k - 1].time_stats.total
            rates = step_rates(seconds, prev.docs_left, prev.chars_left)
            steps.append(
                CleaningStep(name, prev.docs_left - docs, prev.chars_left - chars, docs, chars, **rates)
            )
            if docs == 0:
                raise ValueError(
                    f"{source}: no documents left after cleaning step {name!r} ({prev.docs_left:,} before); "
                    "loosen min_chars/max_chars or check text_column and the data"
                )
    return steps


def clean_with_datatrove(script_args, data_args: DataArguments) -> tuple[Dataset, list[CleaningStep]]:
    """Load and clean ``script_args.dataset_name`` with datatrove as ``data_args`` says; returns the cleaned
    documents in corpus order (a memory-mapped ``Dataset`` of ``text``) and the cleaning report."""
    require_datatrove()
    check_settings(data_args)
    source = script_args.dataset_name
    tasks = data_args.tasks or len(os.sched_getaffinity(0))
    work = work_dir(script_args, data_args, tasks)
    final = "final" if data_args.dedup or data_args.near_dedup else "clean"
    last = "write" if final == "final" else "read"
    if _incomplete(work, last, tasks) > 0:
        ds = load_text_dataset(source, data_args.text_column, script_args.dataset_streaming,
                               script_args.dataset_train_split, script_args.dataset_config,
                               data_args.column_names, data_args.sample_by)  # fmt: skip
        executors = build_executors(ds, data_args, work, tasks)
        logger.info("datatrove: %d stage(s) x %d task(s) on %s, in %s", len(executors), tasks,
                    data_args.executor, work)  # fmt: skip
        run_executors(executors, data_args, work)
    steps = cleaning_report(work, source)
    logger.info("cleaning report for %s (datatrove):\n%s", source, format_report(steps))
    for scratch in ("exact", "minhash"):  # only the final stage needed them
        shutil.rmtree(work / scratch, ignore_errors=True)
    files = sorted(str(p) for p in (work / final).glob("*.parquet"))  # task order = corpus order
    features = datasets.Features({"text": datasets.Value("string")})
    return load_dataset("parquet", data_files=files, split="train", features=features), steps
