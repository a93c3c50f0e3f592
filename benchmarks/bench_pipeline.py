"""The CPU chain end to end: ``hfpipe pipeline --config recipes/configs/pipeline_cpu.yaml`` on the book's data.

    python benchmarks/bench_pipeline.py --data DIR    # DIR holds instruction-data.json and
                                                      # instruction-data-with-preference.json
Writes ``benchmarks/results/pipeline.md``: the wall time of the whole chain against its goal (30 minutes on 2 CPU
cores) and of each stage, tokens and tokens/s per stage, and the report card's evaluation and quality figures.
A fresh ``--output_dir`` is used each run (removed first), so nothing is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 30 * 60


def run_chain(data: Path, out: Path, extra: list[str]) -> float:
    """Run the pipeline (fresh), returning its wall time in seconds."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "hfpipe", "pipeline", "--config", str(REPO / "recipes/configs/pipeline_cpu.yaml"),
           "--instruction_data", str(data / "instruction-data.json"),
           "--preference_data", str(data / "instruction-data-with-preference.json"), "--output_dir", str(out), *extra]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def table(out: Path, seconds: float, command: str) -> str:
    """The results page from the pipeline's report.json."""
    report = json.loads((out / "report.json").read_text())
    fmt = lambda v: "–" if v is None else (f"{v:,.4g}" if isinstance(v, float) else f"{v:,}")  # noqa: E731
    lines = [
        "# Pipeline benchmark: the CPU chain\n", f"`{command}`\n",
        f"Whole chain: **{seconds / 60:.1f} min** (goal: at most {GOAL_SECONDS // 60} min on 2 CPU cores); "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; {report['hardware']['cpu']}.\n",
        "| stage | wall time (s) | tokens | tokens/s |", "|---|---:|---:|---:|",
    ]  # fmt: skip
    for s in report["stages"]:
        lines.append(
            f"| {s['stage']} | {fmt(s['seconds'])} | {fmt(s['tokens'])} | {fmt(s['tokens_per_second'])} |"
        )
    evaluation = report.get("evaluation")
    if evaluation:
        columns = [c for c in evaluation["columns"] if c in ("perplexity", "bits_per_byte") or "acc" in c]
        lines += ["", "| checkpoint | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for r in evaluation["rows"]:
            lines.append(f"| {r['stage']} | " + " | ".join(fmt(r["metrics"].get(c)) for c in columns) + " |")
    lines += ["", "| figure | stage | value |", "|---|---|---:|"]
    lines += [f"| {q['figure']} | {q['stage']} | {fmt(q['value'])} |" for q in report["quality"]]
    lines += ["", "The report card itself: `report.md` in the pipeline's output_dir. No peer tool runs this chain "
              "from one config, so the figure is the wall time against the goal."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="directory with the book's two data files")
    parser.add_argument("--output_dir", type=Path, default=REPO / "benchmarks" / "work" / "pipeline-cpu")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "pipeline.md")
    parser.add_argument("extra", nargs="*", help="more pipeline overrides, e.g. --pretrain.max_steps 20")
    args, extra = parser.parse_known_args(argv)
    seconds = run_chain(args.data, args.output_dir, [*args.extra, *extra])
    command = "python benchmarks/bench_pipeline.py --data DIR" + (" " + " ".join(extra) if extra else "")
    text = table(args.output_dir, seconds, command)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
