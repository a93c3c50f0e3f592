"""Data pipeline benchmark: BPE training time, encode+pack throughput, peak memory on a >= 1 GB corpus.

    python benchmarks/bench_data.py [--shared ../shared/data] [--gb 1.0]

Writes benchmarks/results/data.md.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_bpe_and_throughput(shared: Path, tok_dir: Path) -> list[tuple[str, str]]:
    from datasets import Dataset, disable_progress_bars

    from hfpipe.data import pack_dataset
    from hfpipe.tokenization import save_tokenizer, train_bpe_tokenizer

    disable_progress_bars()
    text = (shared / "tinyshakespeare.txt").read_text(encoding="utf-8")
    docs = [p for p in text.split("\n\n") if p]  # speeches as documents
    t = time.perf_counter()
    tok = train_bpe_tokenizer(docs, vocab_size=8192)
    bpe_s = time.perf_counter() - t
    save_tokenizer(tok, tok_dir)

    backend = tok.backend_tokenizer
    n_tokens = sum(len(e.ids) for e in backend.encode_batch(docs))

    def raw():
        for i in range(0, len(docs), 1000):
            [e.ids for e in backend.encode_batch(docs[i : i + 1000])]

    ds = Dataset.from_dict({"text": docs})

    def ours():
        pack_dataset(ds, tok, block_size=256)

    def best(fn, n=3):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    raw_tps, ours_tps = n_tokens / best(raw), n_tokens / best(ours)
    return [
        ("BPE training, tinyshakespeare (1.1 MB), vocab 8,192", f"{bpe_s:.2f} s"),
        ("raw `tokenizers` encode_batch (+ .ids), tinyshakespeare", f"{raw_tps:,.0f} tokens/s"),
        ("hfpipe encode + eos + pack (datasets map, block 256)", f"{ours_tps:,.0f} tokens/s"),
        ("ratio hfpipe / raw (target >= 0.8)", f"{ours_tps / raw_tps:.2f}x"),
    ]


def make_corpus(shared: Path, out: Path, gb: float, n_files: int = 8) -> int:
    """Write >= ``gb`` GB of unique one-document-per-line text built from Shakespeare's words."""
    words = (shared / "tinyshakespeare.txt").read_text(encoding="utf-8").split()
    rng = random.Random(0)
    base = [" ".join(rng.choices(words, k=rng.randint(40, 160))) for _ in range(20_000)]
    per_file, total, doc = int(gb * 1e9 / n_files) + 1, 0, 0
    for f in range(n_files):
        written, lines = 0, []
        with open(out / f"part-{f:02d}.txt", "w", encoding="utf-8") as fh:
            while written < per_file:
                line = f"doc {doc}: {base[doc % len(base)]}\n"
                lines.append(line)
                written += len(line)
                doc += 1
                if len(lines) == 10_000:
                    fh.write("".join(lines))
                    lines = []
            fh.write("".join(lines))
        total += written
    return total


def child(corpus: Path, tok_dir: Path, out: Path) -> None:
    """Prepare the corpus exactly as recipes/prepare_data.py does (run in a subprocess)."""
    from trl import ScriptArguments

    from hfpipe.data import DataArguments, build_lm_datasets, save_packed_dataset
    from hfpipe.tokenization import load_tokenizer

    # one process: the Rust encoder already uses every core, and forked workers would double-count memory
    source = ScriptArguments(dataset_name=str(corpus / "*.txt"))
    args = DataArguments(sample_by="line", block_size=512, dedup=True)
    dsd = build_lm_datasets(source, args, load_tokenizer(tok_dir))
    save_packed_dataset(dsd, out)
    print({k: len(v) for k, v in dsd.items()}, flush=True)


def _rss_anon(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("RssAnon:"))


def bench_memory(shared: Path, tok_dir: Path, gb: float, work: Path) -> list[tuple[str, str]]:
    import psutil

    corpus = work / "corpus"
    corpus.mkdir()
    t = time.perf_counter()
    n_bytes = make_corpus(shared, corpus, gb)
    gen_s = time.perf_counter() - t
    env = {**os.environ, "HF_DATASETS_CACHE": str(work / "cache"), "TOKENIZERS_PARALLELISM": "false",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}  # fmt: skip
    cmd = [sys.executable, __file__, "--child", str(corpus), str(tok_dir), str(work / "packed")]
    t = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_rss = peak_anon = 0
    while proc.poll() is None:  # sample the whole process tree: RSS and its anonymous (non-file) part
        rss = anon = 0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                rss, anon = rss + p.memory_info().rss, anon + _rss_anon(p.pid)
            except (psutil.Error, OSError):
                pass
        peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
        time.sleep(0.2)
    prep_s = time.perf_counter() - t
    output = proc.stdout.read()
    if proc.returncode:
        raise RuntimeError(f"preparation failed:\n{output[-3000:]}")
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # largest single process
    blocks = output.strip().splitlines()[-1]
    gib = 2**30
    return [
        ("generated corpus", f"{n_bytes / 1e9:.2f} GB in 8 files ({gen_s:.0f} s to write)"),
        (
            "prepare (load, clean, exact dedup, split, tokenize+pack, save)",
            f"{prep_s:.0f} s, blocks {blocks}",
        ),
        ("peak RSS, largest process (ru_maxrss)", f"{maxrss / gib:.2f} GiB"),
        ("peak RSS, whole process tree (sampled)", f"{peak_rss / gib:.2f} GiB"),
        (
            "peak anonymous memory (RssAnon: RSS less file-backed pages; target < 1 GB)",
            f"{peak_anon / gib:.2f} GiB",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data.md")
    ap.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(*a.child)
    if not (a.shared / "tinyshakespeare.txt").is_file():
        sys.exit(f"{a.shared}/tinyshakespeare.txt not found; pass --shared DIR holding the reference data")
    work = Path(tempfile.mkdtemp(prefix="hfpipe-bench-data-"))
    try:
        rows = bench_bpe_and_throughput(a.shared, work / "tokenizer")
        rows += bench_memory(a.shared, work / "tokenizer", a.gb, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = "\n".join(["| measurement | result |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)])
    note = (
        f"\n\nMachine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end of the run. RSS counts the pages of memory-mapped Arrow files that were read "
        "(file-backed page cache, reclaimable by the kernel); the anonymous part is the memory the "
        "pipeline itself holds.\n"
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        f"# Data pipeline benchmark\n\n`python benchmarks/bench_data.py --gb {a.gb}`\n\n{table}{note}"
    )
    print(table)


if __name__ == "__main__":
    main()
