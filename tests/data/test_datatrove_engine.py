"""engine: datatrove: the built-in cleaning as datatrove pipelines (local executor with several tasks; Slurm and
Ray executors built and, for Slurm, run through its generated scripts), same documents and tokens as the
built-in engine, near-duplicate quality, quality filters offline, and one-line refusals."""

import builtins
import importlib.util
import json
import os
import pickle
import re
import socket
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from trl import ScriptArguments

import hfpipe.data.prepare as prepare
from hfpipe.data import DataArguments, clean_dataset, load_clean_split
from hfpipe.data import datatrove_engine as engine
from hfpipe.data.stdlib_corpus import stdlib_corpus_path
from hfpipe.recipe_args import run_recipe

from ..conftest import import_script

ROOT = Path(__file__).resolve().parents[2]


bench = import_script("benchmarks/bench_dedup.py")


@pytest.fixture
def trove():
    """For the tests that run datatrove (in the ``test`` extra)."""
    pytest.importorskip("datatrove", reason='the datatrove extra: pip install "hfpipe[datatrove]"')


@pytest.fixture(autouse=True)
def fresh_corpus_cache():
    prepare._last_corpus = None  # each test loads and cleans for itself
    yield
    prepare._last_corpus = None


def stdlib_docs(n: int) -> list[str]:
    with open(stdlib_corpus_path(), encoding="utf-8") as fh:
        return [json.loads(line)["text"] for _, line in zip(range(n), fh)]


def write_jsonl(rows: list, path: Path) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows), encoding="utf-8")
    return path


@pytest.fixture
def messy_corpus(tmp_path) -> Path:
    """Real prose plus what cleaning removes: exact copies, a null, control characters, a decomposed accent,
    documents too short."""
    docs = stdlib_docs(600)
    docs += docs[10:40] + [
        None,
        "tiny",
        "ok",
        "cafe\u0301 au lait is a drink " * 3,
        "bad\x00control " + docs[3],
    ]
    return write_jsonl(docs, tmp_path / "corpus.jsonl")


def datatrove_args(tmp_path, **kw) -> DataArguments:
    kw = {"tasks": 4, "workers": 2, "min_chars": 10, "datatrove_work_dir": str(tmp_path / "work"), **kw}
    return DataArguments(engine="datatrove", **kw)


def report_rows(report) -> list[tuple]:
    return [(s.name, s.docs_removed, s.chars_removed, s.docs_left, s.chars_left) for s in report]


def test_same_documents_and_report_as_builtin(trove, messy_corpus, tmp_path):
    """Near-dedup off: the same documents in the same order, hence the same tokens, and the same report."""
    script = ScriptArguments(dataset_name=str(messy_corpus))
    built, built_report = load_clean_split(script, DataArguments(min_chars=10))
    prepare._last_corpus = None
    trove, trove_report = load_clean_split(script, datatrove_args(tmp_path))
    for split in ("train", "validation"):
        assert trove[split]["text"] == built[split]["text"]
    assert report_rows(trove_report) == report_rows(built_report)
    rows = {s.name: s for s in trove_report}
    assert rows["malformed"].docs_removed == 1 and rows["length"].docs_removed == 2
    # the 30 copies planted, plus the standard library's own duplicates and control characters
    assert rows["exact dedup"].docs_removed >= 30 and rows["normalize"].chars_removed >= 1
    assert rows["exact dedup"].docs_per_s > 0
    assert len(list((tmp_path / "work" / "final").glob("*.parquet"))) == 4  # four tasks wrote
    assert not (tmp_path / "work" / "exact").exists()  # scratch removed once finished


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """1,000 distinct standard-library docstrings and 100 near copies at exact Jaccard 0.85-0.95."""
    base = bench.distinct_base(stdlib_docs(3000))[:1000]
    texts, kinds, sims = bench.planted_corpus(base, 100, seed=1)
    assert len(sims) == 100 and 0.85 <= min(sims) and max(sims) <= 0.95
    path = bench.write_jsonl(texts, tmp_path_factory.mktemp("planted") / "planted.jsonl")
    built, _ = bench.clean_builtin(path, near_dedup=True)
    return path, texts, kinds, built


def test_planted_near_duplicates_builtin(planted):
    """>= 95 % of the planted copies removed and <= 1 % of the distinct documents lost."""
    _, texts, kinds, built = planted
    scores = bench.score(texts, kinds, built)
    assert scores["plants_removed"] >= 0.95 and scores["distinct_lost"] <= 0.01, scores


def test_planted_near_duplicates_datatrove(trove, planted, tmp_path):
    """The same targets on disk with datatrove's stages, and <= 1 % of the documents kept by one engine only."""
    path, texts, kinds, built = planted
    kept, _ = bench.clean_datatrove(path, True, tmp_path / "work", tasks=2, workers=2)
    scores = bench.score(texts, kinds, kept)
    assert scores["plants_removed"] >= 0.95 and scores["distinct_lost"] <= 0.01, scores
    assert len(set(built) ^ set(kept)) <= 0.01 * len(texts)


def test_recipe_writes_the_same_token_shards(trove, messy_corpus, tmp_path, shared_data):
    recipe = import_script("recipes/prepare_data.py")
    common = ["--dataset_name", str(messy_corpus), "--tokenizer_name_or_path", str(shared_data / "gpt2-tokenizer"),
              "--block_size", "64", "--near_dedup", "false", "--min_chars", "10"]  # fmt: skip
    built = recipe.main([*common, "--output_dir", str(tmp_path / "builtin")])
    prepare._last_corpus = None
    trove = recipe.main([*common, "--output_dir", str(tmp_path / "trove"), "--engine", "datatrove",
                         "--tasks", "3", "--workers", "2", "--datatrove_work_dir", str(tmp_path / "work")])  # fmt: skip
    for split in ("train", "validation"):
        assert np.array_equal(np.asarray(trove[split].tokens()), np.asarray(built[split].tokens()))
    meta = json.loads((tmp_path / "trove" / "hfpipe_data.json").read_text())
    assert meta["data_args"]["engine"] == "datatrove" and meta["cleaning"][0]["name"] == "input"


@pytest.mark.slow
def test_local_config_runs(trove, messy_corpus, tmp_path, shared_data, monkeypatch):
    """recipes/configs/prepare_datatrove.yaml as the README runs it: FineWeb's filters, 4 tasks, 2 at once
    (~20 s on a busy 2-core machine)."""
    monkeypatch.chdir(tmp_path)  # the config's out/ paths are relative
    recipe = import_script("recipes/prepare_data.py")
    recipe.main(["--config", str(ROOT / "recipes" / "configs" / "prepare_datatrove.yaml"),
                 "--dataset_name", str(messy_corpus), "--tokenizer_name_or_path", str(shared_data / "gpt2-tokenizer")])  # fmt: skip
    meta = json.loads((tmp_path / "out" / "packed" / "hfpipe_data.json").read_text())
    removed = {s["name"]: s["docs_removed"] for s in meta["cleaning"]}
    assert {"gopher_repetition", "gopher_quality", "c4", "fineweb", "near dedup"} <= set(removed)
    assert removed["gopher_quality"] > 0 and meta["blocks"]["train"] > 0
    assert len(list((tmp_path / "out" / "datatrove" / "final").glob("*.parquet"))) == 4


def test_missing_extra_is_one_line(monkeypatch, messy_corpus, capsys):
    real_import = builtins.__import__

    def no_datatrove(name, *args, **kwargs):
        if name == "datatrove" or name.startswith("datatrove."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datatrove)
    recipe = import_script("recipes/prepare_data.py")
    args = ["--dataset_name", str(messy_corpus), "--tokenizer_name_or_path", "gpt2", "--engine", "datatrove"]
    # the data step is what is tested (the recipe is a thin wrapper over hfpipe.cli.prepare_data)
    monkeypatch.setattr("hfpipe.cli.prepare_data.load_tokenizer", lambda *a: None)
    with pytest.raises(SystemExit) as exit_:
        run_recipe(lambda: recipe.main(args))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert err[0] == 'error: engine: datatrove needs the datatrove extra: pip install "hfpipe[datatrove]"'


@pytest.mark.parametrize(
    "kw, error",
    [
        ({"executor": "kubernetes"}, "executor='kubernetes'; use one of local, slurm, ray"),
        ({"quality_filters": ["gopher", "c4"]}, r"quality_filters \['gopher'\] are not known"),
        ({"quality_filters": ["c4_badwords"]}, "c4_badwords needs C4's word list.*set c4_badwords_file"),
        ({"quality_filters": ["c4_badwords"], "c4_badwords_file": "nope.txt"}, "'nope.txt' does not exist"),
        ({"executor": "slurm"}, "needs executor_options with partition and time"),
        ({"executor_options": {"partition": "x"}}, r"\['partition'\] are not settings of datatrove's Local"),
        ({"tasks": 0}, "tasks=0 must be between 1 and 65534"),
    ],
)
def test_settings_refused_with_one_line(trove, kw, error, tmp_path):
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        engine.check_settings(datatrove_args(tmp_path, **kw))


def test_options_from_the_command_line_and_other_runs_work_dir(trove, messy_corpus, tmp_path):
    args = DataArguments(
        engine="datatrove", executor="slurm", executor_options='{"partition": "cpu", "time": "1:00:00"}'
    )
    assert args.executor_options == {"partition": "cpu", "time": "1:00:00"}
    with pytest.raises(ValueError, match="executor_options='nope' is not JSON"):
        DataArguments(executor_options="nope")
    with pytest.raises(ValueError, match="engine='spark'; use 'builtin' or 'datatrove'"):
        DataArguments(engine="spark")
    script = ScriptArguments(dataset_name=str(messy_corpus))
    engine.work_dir(script, datatrove_args(tmp_path), tasks=4)
    with pytest.raises(ValueError, match="holds a run with other settings"):
        engine.work_dir(script, datatrove_args(tmp_path, min_chars=50), tasks=4)


def test_spacy_missing_refused(trove, monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "spacy" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"\['fineweb'\] split words with spaCy.*hfpipe\[datatrove\]"):
        engine.check_settings(datatrove_args(tmp_path, quality_filters=["fineweb"]))


@pytest.fixture
def offline(monkeypatch):
    """No Hub and no Internet: any TCP connection fails (local sockets, as the executor uses, still work)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network disabled in this test: connect to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def test_quality_filters_offline(trove, offline, tmp_path, shared_data):
    """Each of datatrove's filters removes the document written to fail it, with no network: spaCy's blank
    English tokenizer is a package, and C4's bad-words list comes from a local file."""
    text = " ".join((shared_data / "the-verdict.txt").read_text(encoding="utf-8").split())
    good, current = [], []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        current.append(sentence)
        if len(" ".join(current)) > 600:
            good.append(" ".join(current))
            current = []
    bad = {
        "gopher_repetition": "\n".join(["This same line comes back again and again."] * 30),
        "gopher_quality": " ".join(str(1000 + 7 * i) for i in range(80)),  # no words, no stop words
        "c4": good[0] + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "fineweb": "\n".join(textwrap.wrap(good[1], 22)),  # mostly short lines
        "c4_badwords": good[2] + " The zorblax was seen there.",
    }
    (tmp_path / "badwords.txt").write_text("zorblax\n")
    path = write_jsonl(good[3:] + list(bad.values()), tmp_path / "c.jsonl")
    args = datatrove_args(tmp_path, tasks=1, workers=1, quality_filters=list(bad),
                          c4_badwords_file=str(tmp_path / "badwords.txt"))  # fmt: skip
    ds, report = engine.clean_with_datatrove(ScriptArguments(dataset_name=str(path)), args)
    kept = set(ds["text"])
    assert not kept & set(bad.values()) and kept <= set(good[3:]) and len(kept) >= len(good[3:]) // 2
    removed = {s.name: s.docs_removed for s in report}
    assert all(removed[name] >= 1 for name in bad), removed


def test_resume_and_reuse(trove, messy_corpus, tmp_path, monkeypatch):
    script = ScriptArguments(dataset_name=str(messy_corpus))
    args = datatrove_args(tmp_path, tasks=2, workers=1)
    # an interrupted run: every stage done but the last, whose task 0 finished and task 1 did not
    work = engine.work_dir(script, args, tasks=2)
    executors = engine.build_executors(prepare.load_text_dataset(str(messy_corpus)), args, work, tasks=2)
    for _, ex in executors[:-1]:
        ex.run()
    executors[-1][1]._run_for_rank(0)
    done = (work / "final" / "00000.parquet").stat().st_mtime_ns
    resumed, report = engine.clean_with_datatrove(script, args)
    assert (work / "final" / "00000.parquet").stat().st_mtime_ns == done  # not redone
    built, built_report = clean_dataset(
        prepare.load_text_dataset(str(messy_corpus)), DataArguments(min_chars=10)
    )
    assert resumed["text"] == built["text"] and report_rows(report) == report_rows(built_report)
    # finished: nothing is read or run again
    monkeypatch.setattr(engine, "load_text_dataset", lambda *a: pytest.fail("the source was read again"))
    reused, reused_report = engine.clean_with_datatrove(script, args)
    assert reused["text"] == resumed["text"] and report_rows(reused_report) == report_rows(report)


def test_empty_after_a_step(trove, messy_corpus, tmp_path):
    with pytest.raises(ValueError, match="corpus.jsonl: no documents left after cleaning step 'length'"):
        engine.clean_with_datatrove(
            ScriptArguments(dataset_name=str(messy_corpus)),
            datatrove_args(tmp_path, tasks=2, min_chars=10**6),
        )


def test_more_tasks_than_documents(trove, tmp_path):
    docs = ["alpha beta gamma delta epsilon zeta eta theta"] * 2 + [
        f"one two three four five six {w}" for w in "xy"
    ]
    path = write_jsonl(docs, tmp_path / "tiny.jsonl")
    ds, _ = engine.clean_with_datatrove(
        ScriptArguments(dataset_name=str(path)),
        datatrove_args(tmp_path, tasks=8, min_chars=1, near_dedup=True),
    )
    built, _ = clean_dataset(prepare.load_text_dataset(str(path)), DataArguments(near_dedup=True))
    assert ds["text"] == built["text"] == docs[1:]


def test_streaming_source_same_documents(trove, messy_corpus, tmp_path):
    """A stream is split between tasks by datasets; the documents kept and their split are the same."""
    built, _ = load_clean_split(ScriptArguments(dataset_name=str(messy_corpus)), DataArguments(min_chars=10))
    prepare._last_corpus = None
    script = ScriptArguments(dataset_name=str(messy_corpus), dataset_streaming=True)
    trove, _ = load_clean_split(script, datatrove_args(tmp_path, tasks=2))
    for split in ("train", "validation"):
        assert sorted(trove[split]["text"]) == sorted(built[split]["text"])


def fake_slurm(bin_dir: Path, log: Path) -> dict:
    """``sbatch`` that records each submission and, with FAKE_SLURM_RUN=1, runs the job at once: every array
    index in turn, as Slurm's nodes would; ``srun``, ``scontrol`` and ``squeue`` to go with it."""
    scripts = {
        "sbatch": f"""
            kind=job; grep -q merge_stats "${{@: -1}}" && kind=merge_stats
            echo "$kind $*" >> {log}
            id=$(( $(wc -l < {log}) + 100 ))
            if [ -n "$FAKE_SLURM_RUN" ]; then
              last=$(sed -n 's/^#SBATCH --array=0-\\([0-9]*\\).*/\\1/p' "${{@: -1}}")
              for i in $(seq 0 ${{last:-0}}); do
                SLURM_ARRAY_TASK_ID=$i SLURM_JOB_ID=$id SLURM_NODELIST=localhost bash "${{@: -1}}" || exit 1
              done
            fi
            echo "Submitted batch job $id"
        """,
        "srun": 'while [[ "$1" == -* ]]; do if [ "$1" = -n ]; then shift; fi; shift; done; exec "$@"',
        "scontrol": "echo localhost",
        "squeue": "true",
    }
    bin_dir.mkdir()
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/bash\n" + textwrap.dedent(body))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    path = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {"PATH": path}


def test_slurm_job_arrays_are_generated(trove, messy_corpus, tmp_path, monkeypatch):
    """The Slurm chain as datatrove submits it: one job array per stage, each after the previous one, running
    the pickled executor; the stub ``sbatch`` only records (no cluster here)."""
    log = tmp_path / "sbatch.log"
    for key, value in fake_slurm(tmp_path / "bin", log).items():
        monkeypatch.setenv(key, value)
    options = {
        "partition": "cpu",
        "time": "2:00:00",
        "cpus_per_task": 2,
        "env_command": "source venv/bin/activate",
    }
    args = datatrove_args(tmp_path, executor="slurm", executor_options=options, near_dedup=True, workers=None)
    engine.check_settings(args)
    ds = prepare.load_text_dataset(str(messy_corpus))
    executors = engine.build_executors(ds, args, tmp_path / "work", tasks=4)
    assert [stage for stage, _ in executors] == ["read", "exact", "minhash", "buckets", "cluster", "write"]
    with pytest.raises(RuntimeError, match=r"Slurm jobs [\d, ]+ ended with stage 'write' incomplete"):
        engine.run_executors(executors, args, tmp_path / "work")  # submits, then finds no job left running
    calls = log.read_text().splitlines()
    jobs = [c for c in calls if c.startswith("job ")]
    assert len(jobs) == 6 and "--dependency" not in jobs[0]
    assert all(re.search(r"--dependency=afterok:\d+", c) for c in jobs[1:])
    for stage, ex in executors:
        script = (tmp_path / "work" / "logs" / stage / "launch_script.slurm").read_text()
        assert "#SBATCH --partition=cpu" in script and "#SBATCH --cpus-per-task=2" in script
        assert f"#SBATCH --array=0-{ex.world_size - 1}" in script and "source venv/bin/activate" in script
        assert f"launch_pickled_pipeline {tmp_path / 'work' / 'logs' / stage / 'executor.pik'}" in script
    with open(tmp_path / "work" / "logs" / "cluster" / "executor.pik", "rb") as fh:
        cluster = pickle.load(fh)  # written by dill; plain pickle reads it
    assert type(cluster.pipeline[0]).__name__ == "ConfirmedCluster" and cluster.world_size == 1


@pytest.mark.slow
def test_slurm_runs_through_its_scripts(trove, messy_corpus, tmp_path, monkeypatch):
    """The generated Slurm scripts run (each array index by the stub ``sbatch``, each a new process loading
    the pickled executor) and give the local executor's documents."""
    for key, value in fake_slurm(tmp_path / "bin", tmp_path / "sbatch.log").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FAKE_SLURM_RUN", "1")
    script = ScriptArguments(dataset_name=str(messy_corpus))
    options = {"partition": "cpu", "time": "1:00:00"}
    slurm, _ = engine.clean_with_datatrove(script, datatrove_args(tmp_path, tasks=2, executor="slurm",
                                                                  executor_options=options, workers=None))  # fmt: skip
    local, _ = engine.clean_with_datatrove(script, datatrove_args(tmp_path / "local", tasks=2))
    assert slurm["text"] == local["text"]


def test_ray_executors_are_built(trove, messy_corpus, tmp_path):
    """Ray: the executors datatrove runs on a cluster (``ray.init()`` reaches it), one per stage."""
    from datatrove.executor.ray import RayPipelineExecutor

    args = datatrove_args(
        tmp_path, executor="ray", executor_options={"cpus_per_task": 2, "mem_per_cpu_gb": 4}
    )
    if importlib.util.find_spec("ray") is None:
        with pytest.raises(ImportError, match=r'executor: ray needs Ray: pip install "datatrove\[ray\]"'):
            engine.check_settings(args)
    executors = engine.build_executors(
        prepare.load_text_dataset(str(messy_corpus)), args, tmp_path / "work", 4
    )
    assert all(isinstance(ex, RayPipelineExecutor) and ex.cpus_per_task == 2 for _, ex in executors)
    assert [ex.world_size for _, ex in executors] == [4, 4, 4]
