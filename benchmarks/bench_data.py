"""Data pipeline benchmark, side by side in one run on a generated corpus of ``--gb`` GB:

1. ``recipes/prepare_data.py`` (load, clean, exact dedup, split, tokenize+pack, write token shards) on every core,
   against raw `tokenizers` ``encode_batch`` over the same lines with as many threads (goal: <= 2x the time);
2. disk per token of the shards (goal: <= 2.1 bytes with GPT-2's vocabulary), against nanoGPT's raw uint16
   ``.bin`` (2 bytes) and the earlier format (int32 input_ids + labels: 8 bytes);
3. pretraining's data loader (a torch ``DataLoader`` over the shards with ``collate_blocks``, shuffled) against
   what a 6x384 GPT consumes in training here (a few Trainer steps on the same shards; goal: >= 20x).

    python benchmarks/bench_data.py [--gb 1.0] [--tokenizer DIR] [--near_dedup]
    python benchmarks/bench_data.py --quick          # a few MB and a small model, for the smoke test

The corpus is built from the words of the standard library's docstrings (no download). ``--tokenizer``: a
tokenizer directory (e.g. GPT-2's); by default a byte-level BPE of 50,257 tokens is trained on the corpus first.
Writes benchmarks/results/data.md.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import json
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
RECIPE = ROOT / "recipes" / "prepare_data.py"
GOALS = {"prepare": 2.0, "bytes_per_token": 2.1, "loader": 20.0}


def make_corpus(out: Path, gb: float, n_files: int = 8, n_base: int = 20_000) -> int:
    """Write >= ``gb`` GB of unique one-document-per-line text, words drawn (with their frequencies) from the
    standard library's docstrings. Returns the bytes written."""
    from hfpipe.data.stdlib_corpus import stdlib_corpus_path

    words = Path(stdlib_corpus_path()).read_text(encoding="utf-8").split()
    rng = random.Random(0)
    base = [" ".join(rng.choices(words, k=rng.randint(40, 160))) for _ in range(n_base)]
    per_file, total, doc = int(gb * 1e9 / n_files) + 1, 0, 0
    out.mkdir(parents=True)
    for f in range(n_files):
        written, lines = 0, []
        with open(out / f"part-{f:02d}.txt", "w", encoding="utf-8") as fh:
            while written < per_file:
                line = f"doc {doc}: {base[doc % len(base)]}\n"
                lines.append(line)
                written += len(line.encode())
                doc += 1
                if len(lines) == 10_000:
                    fh.write("".join(lines))
                    lines = []
            fh.write("".join(lines))
        total += written
    return total


def train_tokenizer(corpus: Path, out: Path, vocab_size: int, sample_bytes: int) -> float:
    """A byte-level BPE trained on the first ``sample_bytes`` of the corpus; returns the seconds it took."""
    from hfpipe.tokenization import save_tokenizer, train_bpe_tokenizer

    lines = []
    with open(sorted(corpus.glob("*.txt"))[0], encoding="utf-8") as fh:
        for line in fh:
            lines.append(line)
            sample_bytes -= len(line)
            if sample_bytes <= 0:
                break
    start = time.perf_counter()
    tokenizer = train_bpe_tokenizer(lines, vocab_size=vocab_size)
    seconds = time.perf_counter() - start
    save_tokenizer(tokenizer, out)
    return seconds


def prepare_flags(corpus: Path, tok_dir: Path, out: Path, block_size: int, near_dedup: bool) -> list[str]:
    flags = {"dataset_name": corpus / "*.txt", "sample_by": "line", "tokenizer_name_or_path": tok_dir,
             "block_size": block_size, "dedup": "true", "near_dedup": str(near_dedup).lower(),
             "validation_size": 0.01, "output_dir": out}  # fmt: skip
    return [item for key, value in flags.items() for item in (f"--{key}", str(value))]


def _pss(pid: int) -> tuple[int, int]:
    """Proportional set size (pages shared between processes, e.g. after fork, split among them): total and
    anonymous, in bytes; (0, 0) for a process that is exiting."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            fields = {
                k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in fh if ":" in line)
            }
    except (OSError, ValueError):
        return 0, 0
    return fields.get("Pss", 0), fields.get("Pss_Anon", 0)


def run_prepare(flags: list[str], work: Path, in_process: bool) -> dict:
    """recipes/prepare_data.py with ``flags``: wall seconds and (in a subprocess) peak memory of its tree."""
    if in_process:  # the smoke test: no second interpreter to start
        from hfpipe.cli import prepare_data

        start = time.perf_counter()
        prepare_data.main(flags)
        return {"seconds": time.perf_counter() - start}
    import psutil

    env = {**os.environ, "HF_DATASETS_CACHE": str(work / "cache"), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    env.pop("TOKENIZERS_PARALLELISM", None)  # the recipe's own choice: one process per core
    start = time.perf_counter()
    proc = psutil.Popen([sys.executable, str(RECIPE), *flags], env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True)  # fmt: skip
    peak_pss = peak_anon = 0
    while proc.poll() is None:  # sample the whole process tree (the recipe and its map workers)
        try:
            tree = [proc.pid, *(p.pid for p in proc.children(recursive=True))]
        except psutil.Error:  # exiting
            tree = []
        pss, anon = (sum(v) for v in zip((0, 0), *map(_pss, tree)))
        peak_pss, peak_anon = max(peak_pss, pss), max(peak_anon, anon)
        time.sleep(1.0)  # reading smaps_rollup costs CPU: sample once a second
    seconds = time.perf_counter() - start
    output = proc.stdout.read()
    if proc.returncode:
        raise RuntimeError(f"prepare_data failed:\n{output[-3000:]}")
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # largest single process
    return {"seconds": seconds, "maxrss": maxrss, "peak_pss": peak_pss, "peak_anon": peak_anon}


# The peer, in its own interpreter that imports nothing but `tokenizers`: raw `encode_batch` (+ `.ids`) over
# every line of the corpus (lines keep their "\n", as the recipe's documents do), 1,000 lines a call.
RAW_ENCODE = """
import itertools, json, sys, time
from pathlib import Path
from tokenizers import Tokenizer
backend = Tokenizer.from_file(sys.argv[2])
seconds, tokens, lines_read = 0.0, 0, 0
for path in sorted(Path(sys.argv[1]).glob("*.txt")):
    with open(path, encoding="utf-8") as fh:
        while lines := list(itertools.islice(fh, 1000)):
            start = time.perf_counter()
            ids = [e.ids for e in backend.encode_batch(lines, add_special_tokens=False)]
            seconds += time.perf_counter() - start
            tokens += sum(map(len, ids))
            lines_read += len(lines)
print(json.dumps({"seconds": seconds, "tokens": tokens, "lines": lines_read}))
"""


def run_raw(corpus: Path, tok_dir: Path, threads: int, work: Path) -> dict:
    """Raw `tokenizers` over the corpus with ``threads`` threads: seconds in ``encode_batch``, tokens, lines."""
    from hfpipe.loading import load_tokenizer

    load_tokenizer(tok_dir).backend_tokenizer.save(str(work / "raw-tokenizer.json"))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "true", "RAYON_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-c", RAW_ENCODE, str(corpus), str(work / "raw-tokenizer.json")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"raw encode failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_loader(shards: Path, batch_size: int, seconds: float) -> float:
    """Tokens/s of a shuffled torch DataLoader over the train shards with pretraining's collator."""
    import torch

    from hfpipe.data import TokenShardDataset
    from hfpipe.pretraining import collate_blocks

    data = TokenShardDataset(shards / "train", verify_checksums=False)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, collate_fn=collate_blocks)
    tokens, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for batch in loader:
            tokens += batch["input_ids"].numel()
            if time.perf_counter() - start >= seconds:
                break
    return tokens / (time.perf_counter() - start)


def measure_model(
    shards: Path, tok_dir: Path, out: Path, dims: tuple, block_size: int, batch: int, steps: int
):
    """Training tokens/s of a GPT of ``dims`` (layers, width, heads) with Trainer on the shards, as pretraining
    runs it (its data path, collator and ThroughputCallback clock; the first logged step left out as warm-up).
    Returns (tokens/s, parameters)."""
    from transformers import Trainer, TrainingArguments
    from trl import ScriptArguments

    from hfpipe.data import DataArguments, build_lm_datasets
    from hfpipe.loading import load_tokenizer
    from hfpipe.models.gpt import GPTConfig, GPTForCausalLM
    from hfpipe.pretraining import collate_blocks
    from hfpipe.training.callbacks import ThroughputCallback, add_callbacks

    tokenizer = load_tokenizer(tok_dir)
    data = build_lm_datasets(ScriptArguments(), DataArguments(packed_dataset_path=str(shards)), tokenizer)
    n_layers, emb_dim, n_heads = dims
    config = GPTConfig.from_preset("gpt2-small", vocab_size=len(tokenizer), n_layers=n_layers, emb_dim=emb_dim,
                                   n_heads=n_heads, context_length=block_size, drop_rate=0.0)  # fmt: skip
    model = GPTForCausalLM._from_config(config, attn_implementation="sdpa")
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps,
                             logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[],
                             disable_tqdm=True, use_cpu=True, learning_rate=3e-4)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=data["train"], data_collator=collate_blocks)
    add_callbacks(trainer, [ThroughputCallback(batch * block_size)])
    trainer.train()
    rates = [h["tokens_per_second"] for h in trainer.state.log_history if "tokens_per_second" in h][1:]
    return len(rates) / sum(
        1 / r for r in rates
    ), model.num_parameters()  # tokens / time over equal intervals


def disk_per_token(shards: Path) -> tuple[float, int, int, str]:
    meta = json.loads((shards / "hfpipe_data.json").read_text())
    tokens = sum(meta["blocks"].values()) * meta["block_size"]
    size = sum(f.stat().st_size for f in shards.rglob("*") if f.is_file())
    return size / tokens, size, tokens, meta["dtype"]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0, help="corpus size in GB")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer directory (default: train a 50,257-token BPE)")
    ap.add_argument("--near_dedup", action="store_true", help="also run MinHash near-dedup")
    ap.add_argument("--quick", action="store_true", help="a few MB, a small model: the smoke test")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data.md")
    a = ap.parse_args(argv)
    if a.tokenizer and not a.tokenizer.is_dir():
        sys.exit(f"error: tokenizer directory {a.tokenizer} not found")
    from hfpipe.data.cleaning import CleaningStep, format_report
    from hfpipe.data.workers import available_cores

    cores, load_before = available_cores(), os.getloadavg()[0]
    gb = 0.001 if a.quick else a.gb
    block_size, batch, steps = (64, 2, 3) if a.quick else (512, 4, 4)
    dims = (2, 64, 2) if a.quick else (6, 384, 6)
    work = Path(tempfile.mkdtemp(prefix="hfpipe-bench-data-"))
    try:
        t = time.perf_counter()
        n_bytes = make_corpus(work / "corpus", gb, n_base=2_000 if a.quick else 20_000)
        gen_s = time.perf_counter() - t
        tok_dir, tok_note = a.tokenizer, f"`{a.tokenizer}`"
        if tok_dir is None:
            tok_dir, vocab, sample = work / "tokenizer", 512 if a.quick else 50_257, 0.5 if a.quick else 20
            tok_s = train_tokenizer(work / "corpus", tok_dir, vocab, int(sample * 1_000_000))
            tok_note = f"byte-level BPE of {vocab:,} tokens trained on the corpus' first {sample} MB in {tok_s:.0f} s"
        shards = work / "packed"
        flags = prepare_flags(work / "corpus", tok_dir, shards, block_size, a.near_dedup)
        prep = run_prepare(flags, work, in_process=a.quick)
        raw = run_raw(work / "corpus", tok_dir, cores, work)
        per_token, size, tokens, dtype = disk_per_token(shards)
        loader_tps = measure_loader(shards, batch, 0.5 if a.quick else 10.0)
        model_tps, params = measure_model(shards, tok_dir, work / "model", dims, block_size, batch, steps)
    finally:
        meta = (
            json.loads((work / "packed" / "hfpipe_data.json").read_text())
            if (work / "packed").is_dir()
            else {}
        )
        shutil.rmtree(work, ignore_errors=True)
    prep_ratio, loader_ratio = prep["seconds"] / raw["seconds"], loader_tps / model_tps
    in_steps = sum(s["seconds"] or 0 for s in meta["cleaning"])
    verdict = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    gib = 2**30
    rows = [
        ("measurement", "hfpipe", "peer", "ratio", "goal met"),
        (f"prepare {n_bytes / 1e9:.2f} GB ({raw['lines']:,} documents), {cores} cores: seconds",
         f"{prep['seconds']:,.1f} s (steps: {in_steps:,.1f} s)", f"raw `encode_batch`, {cores} threads: "
         f"{raw['seconds']:,.1f} s", f"{prep_ratio:.2f}x", f"{verdict(prep_ratio <= GOALS['prepare'])} (<= 2x)"),
        (f"disk per token ({tokens:,} tokens, {dtype})", f"{per_token:.4f} bytes ({size / 1e6:,.1f} MB)",
         "nanoGPT .bin: 2 bytes; earlier format: 8", f"{per_token / 2:.3f}x / {per_token / 8:.3f}x",
         f"{verdict(per_token <= GOALS['bytes_per_token'])} (<= 2.1)"),
        (f"data loader vs {dims[0]}x{dims[1]} GPT ({params / 1e6:.1f} M parameters) training, tokens/s",
         f"{loader_tps:,.0f}", f"{model_tps:,.0f}", f"{loader_ratio:,.0f}x",
         f"{verdict(loader_ratio >= GOALS['loader'])} (>= 20x)"),
    ]  # fmt: skip
    table = "\n".join(["| " + " | ".join(r) + " |" for r in rows[:1]] + ["| --- | --- | --- | --- | --- |"]
                      + ["| " + " | ".join(r) + " |" for r in rows[1:]])  # fmt: skip
    steps_table = format_report([CleaningStep(**s) for s in meta["cleaning"]])
    memory = ""
    if "maxrss" in prep:
        memory = (f"\n\nPeak memory of prepare: largest process {prep['maxrss'] / gib:.2f} GiB (ru_maxrss, "
                  f"RSS); whole process tree (the recipe and its map workers) {prep['peak_pss'] / gib:.2f} GiB PSS, "
                  f"of which {prep['peak_anon'] / gib:.2f} GiB anonymous (PSS counts pages shared after fork once; "
                  "the rest is file-backed: memory-mapped Arrow and shards, which the kernel can drop).")  # fmt: skip
    command = "python benchmarks/bench_data.py" + (" --quick" if a.quick else f" --gb {a.gb}") + (
        f" --tokenizer {a.tokenizer}" if a.tokenizer else "") + (" --near_dedup" if a.near_dedup else "")  # fmt: skip
    text = (
        f"# Data pipeline benchmark\n\n`{command}`\n\n{table}\n\n"
        f"Corpus: {n_bytes / 1e9:.2f} GB of generated one-line documents (standard-library docstring words; "
        f"{gen_s:.0f} s to write). Tokenizer: {tok_note}. Prepare: `recipes/prepare_data.py {' '.join(flags)}` "
        f"(temp paths), exact dedup{', near dedup' if a.near_dedup else ', no near dedup'}; its time is the "
        "recipe's wall clock, interpreter start included. The peer encodes the same lines (with their newline) "
        "1,000 at a call, timing only `encode_batch` and `.ids`; hfpipe uses `encode_batch_fast` (no offsets). "
        f"Loader: `DataLoader(TokenShardDataset, batch_size={batch}, shuffle=True, collate_fn=collate_blocks)`, "
        "shards in the page cache (just written). Model: pretraining's GPT (sdpa, fp32) with Trainer, "
        "`build_lm_datasets` over the same shards and `collate_blocks`, "
        f"{steps} steps of {batch} x {block_size} tokens, the first step left out."
        f"{memory}\n\nPer-step report of the prepare run (`hfpipe_data.json`, `cleaning`):\n\n```\n{steps_table}\n```\n\n"
        f"Machine: {cores} cores (affinity), load average {load_before:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end (other jobs share the cores: times are pessimistic, the "
        "side-by-side ratios less so).\n"
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
