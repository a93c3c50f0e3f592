"""Run a pipeline: the stages of one YAML in order, each resumable, then the report card.

    hfpipe pipeline --config pipeline_cpu \\
        --instruction_data instruction-data.json --preference_data instruction-data-with-preference.json
    hfpipe pipeline --config ... --dry_run              # the plan: what runs, what is skipped and why
    hfpipe pipeline --config ... --from sft --until dpo # a part of it (--stages sft,dpo: those only)
    hfpipe pipeline --config ... --sft.learning_rate 1e-4   # a stage's key; --name value: a pipeline key

The same command again skips the finished stages, resumes an interrupted one, and reruns a changed stage
and those after it that take its output.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from hfpipe.pipeline import run_pipeline
from hfpipe.recipe_args import ConfigError, setup_logging

ARGUMENTS = ()  # free-form: the pipeline's own keys and each stage's recipe keys


def override_value(text: str):
    """A command-line value read as YAML (numbers, lists, true/false), except YAML 1.1's other booleans: ``no``,
    ``yes``, ``on``, ``off`` stay strings, as in a recipe's own flags (``--eval_strategy no``)."""
    if not text:
        return text
    value = yaml.safe_load(text)
    if isinstance(value, bool) and text.strip().lower() not in ("true", "false"):
        return text
    return value


def parse(args: list[str]) -> tuple[argparse.Namespace, dict]:
    """The pipeline's flags, and the rest as overrides: ``--key value`` / ``--stage.key value``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", required=True, help="the pipeline YAML, or a packaged one (`hfpipe configs`)"
    )
    parser.add_argument("--stages", help="comma-separated stages to run (the others are skipped)")
    parser.add_argument("--from", dest="start", help="run from this stage on")
    parser.add_argument("--until", help="run up to this stage")
    parser.add_argument("--dry_run", action="store_true", help="print the plan and stop")
    parser.error = lambda message: (_ for _ in ()).throw(ConfigError(f"{message} (hfpipe pipeline --help)"))
    known, rest = parser.parse_known_args(args)
    overrides, i = {}, 0
    while i < len(rest):
        key = rest[i]
        if not key.startswith("--") or i + 1 >= len(rest):
            raise ConfigError(f"{key!r}: overrides are `--key value` or `--stage.key value` pairs")
        name, _, value = key[2:].partition("=")
        if not _:
            i += 1
            value = rest[i]
        overrides[name] = override_value(value)
        i += 1
    return known, overrides


def main(args: list[str] | None = None) -> dict:
    """Run the pipeline; returns its state (the stages' fingerprints, status and wall times)."""
    known, overrides = parse(list(sys.argv[1:] if args is None else args))
    setup_logging()
    only = [s.strip() for s in known.stages.split(",") if s.strip()] if known.stages else None
    return run_pipeline(known.config, overrides, only, known.start, known.until, known.dry_run)
