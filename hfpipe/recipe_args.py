"""Recipe configuration and command-line behaviour shared by every recipe.

Settings: dataclass defaults < YAML file (``--config``) < command-line flags. Recipes combine trl's own
dataclasses (``ScriptArguments``, ``ModelConfig``, ``SFTConfig``...) with hfpipe's few; YAML keys are flat
and named exactly like the fields, and an unknown key is an error that names it.

For every ``TrainingArguments`` subclass the parser resolves precision once, for every trainer:
``bf16`` defaults to on only where the hardware computes it natively (``hardware.fast_bf16_available``),
and ``use_cpu`` is set where there is no GPU (transformers refuses bf16 on a CPU otherwise, and builds
gloo DDP for multi-process CPU launches only with it).
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml
from transformers import TrainingArguments
from trl import TrlParser

from . import hardware
from .compat import quiet_known_deprecations, training_key_translations
from .configs import ConfigError, resolve_config
from .hardware import launched_on_cpu_only
from .io import check_output_dir
from .training.muon import OptimizerArguments, check_muon_fits

logger = logging.getLogger(__name__)

DEBUG_ENV = "HFPIPE_DEBUG"


def _known_keys(dataclass_types) -> set[str]:
    return {f.name for dc in dataclass_types for f in fields(dc) if f.init}


def _check_yaml(path: str, known: set[str]) -> dict:
    try:
        data = yaml.safe_load(resolve_config(path).read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path!r} is not valid YAML: {err}") from None
    if data is None:
        return {}
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
    return data


def check_precision(bf16: bool | None, fp16: bool | None) -> None:
    """Refuse precision settings that cannot work here; warn once when bf16 will be slow."""
    if bf16 and fp16:
        raise ConfigError("bf16 and fp16 are both set; choose one (--bf16 true or --fp16 true), not both")
    if fp16 and not hardware.has_accelerator():
        raise ConfigError(
            "fp16 mixed precision needs a GPU and this machine has none; drop --fp16 "
            "(bf16 is chosen automatically where the CPU computes it natively)"
        )
    if bf16 and not hardware.has_accelerator() and not hardware.fast_bf16_available():
        warnings.warn(
            "bf16 is on, but this CPU has no native bf16 (no AVX512-BF16 or AMX): training will run about 4x "
            "slower than fp32. Leave bf16 unset to choose automatically.",
            stacklevel=2,
        )


_POSITIVE_INTS = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")


def check_training_values(ns) -> None:
    """Catch values that would otherwise fail deep inside torch after the data is prepared."""
    for name in _POSITIVE_INTS:
        value = getattr(ns, name, None)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    lr = getattr(ns, "learning_rate", None)
    if lr is not None and lr < 0:
        raise ConfigError(f"learning_rate must be positive, got {lr}")
    out = getattr(ns, "output_dir", None)
    if out and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"output_dir {out!r} is a file, not a directory; choose another output_dir")


@dataclass
class RunArguments:
    """Settings of any training recipe that transformers' ``TrainingArguments`` no longer has."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace what output_dir holds; otherwise a different run there is refused."},
    )


def optimizer_keys(dataclass_types: Sequence[type]) -> set[str]:
    """hfpipe's optimizer settings (``optimizer: muon``...): keys of every recipe that trains."""
    training = any(issubclass(t, TrainingArguments) for t in dataclass_types)
    return _known_keys([OptimizerArguments]) if training else set()


def _cli_keys(args: Sequence[str]) -> list[str]:
    return [a[2:].split("=", 1)[0] for a in args if a.startswith("--") and a != "--config"]


# The TrainingArguments keys most runs set, shown right after hfpipe's own in --help (the rest: --help-all).
COMMON_TRAINING_KEYS = (
    "output_dir", "overwrite_output_dir", "max_steps", "num_train_epochs", "per_device_train_batch_size",
    "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type",
    "warmup_steps", "weight_decay", "max_grad_norm", "bf16", "eval_strategy", "eval_steps", "logging_steps",
    "save_steps", "save_total_limit", "seed", "report_to", "activation_checkpointing", "gradient_checkpointing",
)  # fmt: skip
HELP_ALL = "--help-all"


class _HelpAllAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        parser.full_help = True
        parser.print_help()
        parser.exit()


def help_sections(dataclass_types) -> list[tuple[str, list[str], bool]]:
    """``(heading, field names, shown without --help-all)`` in the order --help prints them: hfpipe's settings,
    the common training ones, the other libraries' dataclasses, the trainer config's own, and last the rest of
    ``TrainingArguments``."""
    base = {f.name for f in fields(TrainingArguments)}
    ours, theirs, trainer_own, training = [], [], [], []
    for dc in dataclass_types:
        names = [f.name for f in fields(dc) if f.init]
        if issubclass(dc, TrainingArguments):
            training += [n for n in names if n in base]
            names = [n for n in names if n not in base]
        if dc.__module__.split(".")[0] == "hfpipe" and dc is not RunArguments:
            ours.append((f"hfpipe's {dc.__name__}", names))
        elif issubclass(dc, TrainingArguments):
            trainer_own.append((f"{dc.__name__}'s own settings ({dc.__module__.split('.')[0]})", names))
        elif dc is not RunArguments:
            theirs.append((f"{dc.__name__} ({dc.__module__.split('.')[0]})", names))
    if any(dc is RunArguments for dc in dataclass_types):
        training.append("overwrite_output_dir")
    common = [k for k in COMMON_TRAINING_KEYS if k in training]
    if "activation_checkpointing" in common and "gradient_checkpointing" in common:
        common.remove("gradient_checkpointing")  # its old name (transformers < 5.23), with the rest
    rest = [n for n in training if n not in common]
    sections = [(title, names, True) for title, names in ours]
    sections.append(("common training settings (TrainingArguments)", common, True))
    sections += [(title, names, True) for title, names in theirs + trainer_own]
    sections.append(("every other TrainingArguments setting", rest, False))
    return [section for section in sections if section[1]]


class RecipeParser(TrlParser):
    """``TrlParser`` whose errors are one readable line, with hardware-aware precision defaults and a --help
    that shows hfpipe's settings and the common training ones first (``--help-all``: every setting)."""

    full_help = False

    def __init__(self, dataclass_types, **kwargs):
        kwargs.setdefault("usage", "%(prog)s [--config file.yaml] [--key value ...]")
        super().__init__(dataclass_types, **kwargs)
        self.dataclass_types_for_help = list(dataclass_types)
        if any(issubclass(dc, TrainingArguments) for dc in self.dataclass_types_for_help):
            self.add_argument(HELP_ALL, action=_HelpAllAction, nargs=0, default=argparse.SUPPRESS,
                              dest=argparse.SUPPRESS, help="list every setting, all of TrainingArguments' too")  # fmt: skip
        defaults = {}
        if any(a.dest == "bf16" for a in self._actions):
            defaults["bf16"] = hardware.fast_bf16_available()
        if any(a.dest == "use_cpu" for a in self._actions) and not hardware.has_accelerator():
            defaults["use_cpu"] = True
        self.set_defaults_with_config(**defaults)

    def format_help(self) -> str:
        """Usage, then the settings by section (see ``help_sections``); without ``--help-all`` the long tail of
        ``TrainingArguments`` is one line saying how to list it."""
        by_dest = {}
        for action in self._actions:  # a bool that defaults to True has two: --key and --no_key
            by_dest.setdefault(action.dest, []).append(action)
        formatter = self._get_formatter()
        formatter.add_usage(self.usage, [], [])
        formatter.add_text(self.description)
        formatter.start_section("options")
        formatter.add_arguments([a for a in self._actions if a.dest in (argparse.SUPPRESS, "help", "config")])
        formatter.end_section()
        for title, names, shown in help_sections(self.dataclass_types_for_help):
            if shown or self.full_help:
                formatter.start_section(title)
                formatter.add_arguments([action for n in names for action in by_dest.get(n, [])])
                formatter.end_section()
            else:
                formatter.add_text(f"{len(names)} more TrainingArguments settings (logging, saving, evaluation, "
                                   f"distributed, hub...): {HELP_ALL} lists them")  # fmt: skip
        formatter.add_text(self.epilog)
        return formatter.format_help()

    def error(self, message: str):
        message = re.sub(r"argument (--\w+)(/--[\w-]+)*:", r"\1:", message)  # one spelling of the flag
        raise ConfigError(f"{message} (run with --help for the list of settings)")

    explicit_keys: list[str] = []  # settings the user gave (YAML or CLI): they identify a run

    def parse_args_into_dataclasses(self, args=None, **kwargs):
        namespace, _ = self.parse_known_args(args=args)
        if hasattr(namespace, "bf16"):
            check_precision(namespace.bf16, getattr(namespace, "fp16", False))
        check_training_values(namespace)
        given = {k: getattr(namespace, k) for k in self.explicit_keys if hasattr(namespace, k)}
        self.run_settings = json.loads(json.dumps(given, default=str))
        return super().parse_args_into_dataclasses(args=args, **kwargs)


def _translate_yaml(data: dict, translations: dict) -> dict:
    out = {}
    for key, value in data.items():
        out.update(translations[key](value) if key in translations else {key: value})
    return out


def _translate_cli(args: list[str], translations: dict) -> list[str]:
    """``--old value`` / ``--old=value`` flags of renamed keys, written with this release's names."""
    out, i = [], 0
    while i < len(args):
        flag = args[i]
        name, has_value, value = flag[2:].partition("=") if flag.startswith("--") else ("", "", "")
        if name in translations:
            if not has_value:
                i += 1
                value = args[i] if i < len(args) else ""
            for new_key, new_value in translations[name](value).items():
                out += [f"--{new_key}", str(new_value)]
        else:
            out.append(flag)
        i += 1
    return out


def parse_recipe_args(dataclass_types: Sequence[type], args: Sequence[str] | None = None):
    """Parse ``--config file.yaml`` plus CLI overrides into one instance per dataclass type."""
    if launched_on_cpu_only():
        # TrainingArguments sets up gloo DDP only for CPU runs; otherwise each rank trains alone.
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    args = list(sys.argv[1:] if args is None else args)
    types = list(dataclass_types)
    training = [t for t in types if issubclass(t, TrainingArguments)]
    extra = [RunArguments, OptimizerArguments] if training and RunArguments not in types else []
    quiet_known_deprecations()
    known = _known_keys(types + extra)
    translations = training_key_translations(known)
    yaml_data = {}
    if "--config" in args:
        i = args.index("--config")
        if i + 1 >= len(args):
            raise ConfigError(
                "--config needs a YAML file, or the name of a packaged config (`hfpipe configs`)"
            )
        yaml_data = _check_yaml(args[i + 1], known | set(translations))
        args = args[:i] + args[i + 2 :]
    yaml_data = _translate_yaml(yaml_data, translations)
    args = _translate_cli(args, translations)
    unknown = [
        k
        for k in _cli_keys(args)
        if k.replace("-", "_") not in known and k not in ("help", "h", HELP_ALL[2:])
    ]
    if unknown:
        hints = [f"--{k}" + (f" (did you mean --{c[0]}?)" if (c := difflib.get_close_matches(k, sorted(known), n=1)) else "")
                 for k in unknown]  # fmt: skip
        raise ConfigError(f"unknown setting(s) {', '.join(hints)}; run with --help for the list of settings")
    for key, value in (yaml_data.pop("env", None) or {}).items():  # trl's `env:` block
        os.environ[key] = str(value)
    parser = RecipeParser(types + extra)
    parser.explicit_keys = [*yaml_data, *_cli_keys(args)]
    parser.set_defaults_with_config(**yaml_data)
    parsed = parser.parse_args_into_dataclasses(args=args)
    for obj in parsed:
        if getattr(obj, "output_dir", None):
            try:
                check_output_dir(obj.output_dir)
            except ValueError as err:
                raise ConfigError(str(err)) from None
    if extra:
        (run_args, optimizer_args), parsed = parsed[-2:], parsed[:-2]
        for obj in parsed:
            if isinstance(obj, TrainingArguments):
                obj.overwrite_output_dir = run_args.overwrite_output_dir
                obj.hfpipe_run_settings = parser.run_settings
                obj.hfpipe_optimizer = optimizer_args  # read by training.run.train_and_evaluate
                if optimizer_args.optimizer == "muon":
                    check_muon_fits(optim=getattr(obj.optim, "value", obj.optim), deepspeed=bool(obj.deepspeed),
                                    peft=any(getattr(o, "use_peft", False) for o in parsed))  # fmt: skip
    return parsed


def setup_logging(main_process: bool = True) -> None:
    """Readable logs: hfpipe's at INFO on the main process, transformers' warnings only, and no per-file bars
    for loading and saving weights (the training and evaluation bars stay)."""
    from transformers.utils import logging as hf_logging

    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        level=logging.INFO if main_process else logging.WARNING,
        stream=sys.stdout,
    )
    hf_logging.set_verbosity_warning()
    hf_logging.disable_progress_bar()


def run_recipe(main: Callable[[], object]) -> None:
    """Run a recipe's ``main``; a user error ends in one ``error: ...`` line and exit code 2.

    ``HFPIPE_DEBUG=1`` shows the full traceback instead.
    """
    from .training.checkpoints import CheckpointError

    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError, CheckpointError, ImportError) as err:
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        message = str(err).strip() or type(err).__name__
        print(f"error: {message}\n(set {DEBUG_ENV}=1 to see the traceback)", file=sys.stderr)
        sys.exit(2)
