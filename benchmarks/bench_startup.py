"""Start-up time: ``import hfpipe`` and a recipe's ``--help`` against ``import transformers``, side by side.

    python benchmarks/bench_startup.py            # 5 rounds; writes benchmarks/results/startup.md
    python benchmarks/bench_startup.py --rounds 1 --output /tmp/startup.md

Each round runs every command once, in turn, in a new Python process, so load on the machine hits all of them
alike; the table gives each command's median wall time and its ratio to ``import transformers`` (goal for
``import hfpipe``: at most 1.5x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python -c 'import transformers'": [sys.executable, "-c", "import transformers"],
    "python -c 'import hfpipe'": [sys.executable, "-c", "import hfpipe"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "python recipes/pretrain.py --help": [sys.executable, "recipes/pretrain.py", "--help"],
}


def wall_time(argv: list[str]) -> float:
    """Seconds one command takes, start to exit (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(rounds: int) -> dict[str, list[float]]:
    """``rounds`` wall times per command, the commands interleaved within each round."""
    times = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, argv in COMMANDS.items():
            times[name].append(wall_time(argv))
    return times


def table(times: dict[str, list[float]]) -> str:
    """Markdown: median seconds and the ratio to ``import transformers``."""
    base = statistics.median(times["python -c 'import transformers'"])
    rows = ["| command | median wall (s) | ratio to `import transformers` |", "| --- | ---: | ---: |"]
    for name, values in times.items():
        median = statistics.median(values)
        rows.append(f"| `{name}` | {median:.2f} | {median / base:.2f}x |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "startup.md")
    args = parser.parse_args(argv)
    times = measure(args.rounds)
    load = os.getloadavg()[0]
    text = (
        "# Start-up time\n\n`python benchmarks/bench_startup.py`\n\n"
        + table(times)
        + f"\n\n{args.rounds} rounds, commands interleaved; {os.cpu_count()} CPUs, load average {load:.1f} at "
        "the end. `import hfpipe` does not import torch: the GPT classes load on first use and register with "
        "transformers' Auto classes when those load. A recipe's `--help` builds its parser from "
        "`TrainingArguments`, whose import pulls in torch and peft.\n"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
