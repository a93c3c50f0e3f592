"""Start-up time: ``import hfpipe`` and the ``--help`` of hfpipe's commands against ``import transformers`` and
``trl sft --help``, side by side.

    python benchmarks/bench_startup.py            # 5 rounds; writes benchmarks/results/startup.md
    python benchmarks/bench_startup.py --rounds 1 --output /tmp/startup.md --only import

Each round runs every command once, in turn, in a new Python process, so load on the machine hits all of them
alike; the table gives each command's median wall time and its ratios to ``import transformers`` and to
``trl sft --help`` (goals: ``import hfpipe`` at most 1.5x the first; every ``--help`` at most 1.0x the second).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hfpipe.io import write_file_atomically

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the console scripts of this environment
IMPORT_TRANSFORMERS, TRL_HELP = "python -c 'import transformers'", "trl sft --help"
COMMANDS = {
    IMPORT_TRANSFORMERS: [sys.executable, "-c", "import transformers"],
    "python -c 'import hfpipe'": [sys.executable, "-c", "import hfpipe"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    TRL_HELP: [str(BIN / "trl"), "sft", "--help"],
    "hfpipe sft --help": [str(BIN / "hfpipe"), "sft", "--help"],
    "python recipes/pretrain.py --help": [sys.executable, "recipes/pretrain.py", "--help"],
    "hfpipe --help": [str(BIN / "hfpipe"), "--help"],
}


def wall_time(argv: list[str]) -> float:
    """Seconds one command takes, start to exit (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(rounds: int, only: list[str] | None = None) -> dict[str, list[float]]:
    """``rounds`` wall times per command (those whose name contains one of ``only``, and the two references),
    the commands interleaved within each round."""
    chosen = {name: argv for name, argv in COMMANDS.items()
              if not only or name in (IMPORT_TRANSFORMERS, TRL_HELP) or any(word in name for word in only)}  # fmt: skip
    times = {name: [] for name in chosen}
    for _ in range(rounds):
        for name, argv in chosen.items():
            times[name].append(wall_time(argv))
    return times


def table(times: dict[str, list[float]]) -> str:
    """Markdown: median seconds and the ratios to ``import transformers`` and ``trl sft --help``."""
    base, trl = (statistics.median(times[name]) for name in (IMPORT_TRANSFORMERS, TRL_HELP))
    rows = [
        "| command | median wall (s) | ratio to `import transformers` | ratio to `trl sft --help` |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        rows.append(f"| `{name}` | {median:.2f} | {median / base:.2f}x | {median / trl:.2f}x |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "startup.md")
    parser.add_argument(
        "--only", nargs="*", help="measure only the commands whose name contains one of these"
    )
    args = parser.parse_args(argv)
    times = measure(args.rounds, args.only)
    load = os.getloadavg()[0]
    text = (
        "# Start-up time\n\n`python benchmarks/bench_startup.py`\n\n"
        + table(times)
        + f"\n\n{args.rounds} rounds, commands interleaved; {os.cpu_count()} CPUs, load average {load:.1f} at "
        "the end. `import hfpipe` imports neither torch nor transformers: the GPT classes load on first use and "
        "register with transformers' Auto classes when those load. A command's `--help` builds its parser from "
        "`TrainingArguments` (as `trl sft --help` does), which imports torch; transformers imports peft with it, and "
        "through peft its model classes, only because peft is installed: a process that only prints hfpipe's "
        "help keeps peft out (`hfpipe.cli.skip_peft_when_only_printing_help`), and hfpipe's settings modules import "
        "the trainer, datasets and the model classes only in the functions that use them.\n"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(lambda tmp: tmp.write_text(text), args.output)
    print(text)
    return text


if __name__ == "__main__":
    main()
