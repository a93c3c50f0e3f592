"""Recipe configuration: defaults < YAML file (``--config``) < command-line flags.

Every recipe declares its settings as dataclasses (its own, or transformers'/trl's
``TrainingArguments``-style ones). YAML keys are flat and named exactly like the dataclass
fields; an unknown key is an error that names it.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence
from dataclasses import fields

import yaml
from trl import TrlParser


class ConfigError(ValueError):
    """A recipe configuration that cannot be used as given."""


def _known_keys(dataclass_types) -> set[str]:
    return {f.name for dc in dataclass_types for f in fields(dc) if f.init}


def _check_yaml(path: str, known: set[str]) -> None:
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path!r} does not exist; pass an existing YAML file to --config"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path!r} is not valid YAML: {err}") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path!r} must hold a YAML mapping of flat keys, got {type(data).__name__}"
        )
    unknown = [k for k in data if k not in known and k != "env"]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"unknown key(s) in {path}: {', '.join(hints)}; remove them or fix their names")


def launched_on_cpu_only() -> bool:
    """True for a multi-process launch (``accelerate launch``/torchrun) on a machine with no GPU."""
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def parse_recipe_args(dataclass_types: Sequence[type], args: Sequence[str] | None = None):
    """Parse ``--config file.yaml`` plus CLI overrides into one instance per dataclass type."""
    if launched_on_cpu_only():
        # TrainingArguments sets up gloo DDP only for CPU runs; otherwise each rank trains alone.
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    args = list(sys.argv[1:] if args is None else args)
    if "--config" in args:
        i = args.index("--config")
        if i + 1 >= len(args):
            raise ConfigError("--config needs a path to a YAML file")
        _check_yaml(args[i + 1], _known_keys(dataclass_types))
    parser = TrlParser(list(dataclass_types))
    return parser.parse_args_and_config(args)
