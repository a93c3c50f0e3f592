"""Stages chained: one YAML from raw text to a served chat model, each stage resumable, and a report card.

    hfpipe pipeline --config recipes/configs/pipeline_cpu.yaml --instruction_data instruction-data.json ...

The YAML::

    output_dir: outputs/pipeline          # stage outputs go to output_dir/<stage>
    seed: 42                              # every stage's seed, unless it sets one
    instruction_data: data.json           # any other top-level key is a variable: "{instruction_data}"
    stages:                               # in order; a stage runs the recipe of its name (or `recipe:`)
      pretrain: {config: quickstart.yaml, max_steps: 600}    # its recipe's YAML + keys of that recipe
      sft: {config: sft_alpaca.yaml, dataset_name: "{instruction_data}"}

Outputs are wired to inputs: the tokenizer to pretraining, the newest language model to SFT, DPO, RL, the
reward model, quantization, GGUF and native export, the reward model to RL, every language model to
evaluation. A key the stage sets itself wins. A finished stage whose settings and inputs are unchanged (its
fingerprint) is skipped; a changed one reruns from scratch, and so does every stage after it that takes its
output; an interrupted one resumes through its recipe's own resume. Before the first stage runs, every stage's
inputs are checked (``hfpipe.preflight``): bad data or a wrong path is one line in seconds, not an error after
pretraining.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .configs import resolve_config
from .io import check_output_dir, write_json_atomically
from .recipe_args import ConfigError, optimizer_keys, parse_recipe_args
from .stage_attempts import begin_attempt, end_attempt, heartbeat

logger = logging.getLogger(__name__)
STATE_FILE = "pipeline.json"
LOCK_FILE = ".pipeline.lock"

# recipe -> (its CLI module, the key its output goes to, the kind of output it makes)
RECIPES = {
    "train_tokenizer": ("train_tokenizer", "output_dir", "tokenizer"),
    "prepare_data": ("prepare_data", "output_dir", "packed"),
    "pretrain": ("pretrain", "output_dir", "lm"),
    "finetune_classifier": ("finetune_classifier", "output_dir", "classifier"),
    "sft": ("sft", "output_dir", "lm"),
    "reward_model": ("reward_model", "output_dir", "reward"),
    "dpo": ("dpo", "output_dir", "lm"),
    "rl": ("rl", "output_dir", "lm"),
    "distill": ("distill", "output_dir", "lm"),
    "evaluate": ("evaluate_model", "output_dir", None),
    "quantize": ("quantize", "output_dir", "int8"),
    "export_gguf": ("export_gguf", "output_file", "gguf"),
    "export_native": ("export_native", "output_dir", "native"),
}
# recipe -> {key: the kind of output it takes}; "lms" is every language model made before it
INPUTS = {
    "prepare_data": {"tokenizer_name_or_path": "tokenizer"},
    "pretrain": {"tokenizer_name_or_path": "tokenizer", "packed_dataset_path": "packed"},
    "finetune_classifier": {"model_name_or_path": "lm"},
    "sft": {"model_name_or_path": "lm"},
    "reward_model": {"model_name_or_path": "lm"},
    "dpo": {"model_name_or_path": "lm"},
    "rl": {"model_name_or_path": "lm", "reward_model_path": "reward"},
    "distill": {"teacher_model_name_or_path": "lm"},
    "evaluate": {"model_name_or_path": "lms"},
    "quantize": {"model_name_or_path": "lm"},
    "export_gguf": {"model_name_or_path": "lm"},
    "export_native": {"model_name_or_path": "lm"},
}
# stages every process of a multi-process launch runs together; the others run on the main process only
DISTRIBUTED = {"pretrain", "finetune_classifier", "sft", "reward_model", "dpo", "rl", "distill"}
PIPELINE_KEYS = {"output_dir", "seed", "stages", "report_prompts"}
# arguments whose files' contents are in the fingerprint
FILE_KEYS = ("--config", "--dataset_name", "--eval_file")


@dataclass
class Stage:
    """One stage of the plan: what runs, with which arguments, and what to do with it."""

    name: str
    recipe: str
    args: list[str]  # the recipe's command line
    output: Path
    inputs: dict[str, str] = field(default_factory=dict)  # key -> the stage whose output it takes
    fingerprint: str = ""
    action: str = "run"  # run | skip | rerun | resume | restart
    why: str = ""
    parsed: tuple = field(default=(), repr=False)  # its recipe's settings, parsed (checked before a run)


def load_pipeline(path: str, overrides: dict | None = None) -> dict:
    """The pipeline YAML with command-line overrides (``{"key": v}``, ``{"stage.key": v}``) applied; variables
    (``"{name}"``) substituted. Unknown stages and top-level keys that nothing uses are errors."""
    file = resolve_config(path, what="pipeline config")
    try:
        spec = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"pipeline config {path!r} is not valid YAML: {err}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("stages"), dict) or not spec["stages"]:
        raise ConfigError(f"{path}: a pipeline needs `stages:`, a mapping of stage name -> its settings")
    for key, value in (overrides or {}).items():
        stage, _, sub = key.partition(".")
        if sub:
            if stage not in spec["stages"]:
                raise ConfigError(
                    f"--{key}: the pipeline has no stage {stage!r} ({', '.join(spec['stages'])})"
                )
            spec["stages"][stage] = {**(spec["stages"][stage] or {}), sub: value}
        else:
            spec[key] = value
    variables = {k: v for k, v in spec.items() if k not in PIPELINE_KEYS}
    used = set()

    def substitute(value):
        if isinstance(value, str):
            for name in re.findall(r"\{(\w+)\}", value):
                if name not in variables:
                    raise ConfigError(f"{path}: {{{name}}} is used but not set; add `{name}:` or --{name}")
                used.add(name)
            return re.sub(r"\{(\w+)\}", lambda m: str(variables[m.group(1)]), value)
        return [substitute(v) for v in value] if isinstance(value, list) else value

    for name, settings in spec["stages"].items():
        if settings is not None and not isinstance(settings, dict):
            raise ConfigError(f"{path}: stage {name!r} must be a mapping of settings")
        spec["stages"][name] = {k: substitute(v) for k, v in (settings or {}).items()}
    unused = sorted(set(variables) - used)
    if unused:
        raise ConfigError(f"{path}: unknown key(s) {unused}: neither a pipeline setting ({sorted(PIPELINE_KEYS)}) "
                          "nor a variable a stage uses")  # fmt: skip
    spec.setdefault("output_dir", "outputs/pipeline")
    spec["_file"] = str(file.resolve())
    spec["_base"] = str(file.resolve().parent)
    return spec


def _cli(key: str, value) -> list[str]:
    if isinstance(value, list):
        return [f"--{key}", *map(str, value)]
    if isinstance(value, bool):
        return [f"--{key}", str(value).lower()]
    if isinstance(value, dict):
        return [f"--{key}", json.dumps(value)]
    return [f"--{key}", str(value)]


def _file_identity(path: Path) -> list:
    """What a local input's content is judged by: its files' names, sizes and modification times."""
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else []
    )
    return [(str(p), p.stat().st_size, int(p.stat().st_mtime)) for p in files]


def fingerprint(recipe: str, args: list[str], upstream: list[str]) -> str:
    """A stage's identity: its recipe, its arguments, the contents of the config and data files they name (by
    size and time) and its upstream stages' fingerprints."""
    files = []
    for i, arg in enumerate(args):
        prev = args[i - 1] if i else ""
        if prev in FILE_KEYS and Path(arg).exists():
            files.append(_file_identity(Path(arg)))
    blob = json.dumps([recipe, args, files, upstream], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def plan(spec: dict, only: list[str] | None = None, start: str | None = None, until: str | None = None):
    """The stages in order, their arguments wired, fingerprinted, and what to do with each."""
    out = Path(spec["output_dir"])
    names = list(spec["stages"])
    for flag, name in (("--from", start), ("--until", until), *(("--stages", n) for n in only or [])):
        if name is not None and name not in names:
            raise ConfigError(f"{flag} {name}: the pipeline has no stage {name!r} ({', '.join(names)})")
    chosen = set(only or names)
    if start is not None:
        chosen &= set(names[names.index(start) :])
    if until is not None:
        chosen &= set(names[: names.index(until) + 1])
    state = read_state(out)
    made: dict[str, list[str]] = {}  # kind -> stages that made it, in order
    prints: dict[str, str] = {}
    stages = []
    for name in names:
        settings = dict(spec["stages"][name])
        recipe = settings.pop("recipe", name)
        if recipe not in RECIPES:
            raise ConfigError(f"stage {name!r}: no recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        module, out_key, kind = RECIPES[recipe]
        arguments = importlib.import_module(f"hfpipe.cli.{module}").ARGUMENTS
        known = {f.name for dc in arguments for f in dc.__dataclass_fields__.values()}
        known |= optimizer_keys(arguments)  # hfpipe's `optimizer: muon`... for a training recipe
        args, inputs = [], {}
        config = settings.pop("config", None)
        if config is not None:
            try:  # beside the pipeline file first, then among the packaged configs
                path = resolve_config(config, beside=spec["_base"])
            except ConfigError as err:
                raise ConfigError(f"stage {name!r}: {err}") from None
            args += ["--config", str(path)]
        output = out / name if out_key == "output_dir" else out / name / "model.gguf"
        for key, wanted in INPUTS.get(recipe, {}).items():
            if key in settings:
                continue
            sources = made.get("lm" if wanted == "lms" else wanted, [])
            if not sources:
                continue
            picked = sources if wanted == "lms" else sources[-1:]
            inputs[key] = ", ".join(picked)
            settings[key] = [str(out / s) for s in picked] if wanted == "lms" else str(out / picked[0])
        if "seed" in spec and "seed" in known and "seed" not in settings:
            settings["seed"] = spec["seed"]
        unknown = sorted(k for k in settings if k not in known)
        if unknown:
            raise ConfigError(f"stage {name!r}: unknown key(s) {unknown} for recipe {recipe} (its keys: "
                              f"`hfpipe {recipe} --help`)")  # fmt: skip
        settings[out_key] = str(output)
        for key, value in settings.items():
            args += _cli(key, value)
        upstream = sorted({s for v in inputs.values() for s in v.split(", ")})
        stage = Stage(name, recipe, args, output, inputs)
        stage.fingerprint = fingerprint(recipe, args, [prints[s] for s in upstream])
        prints[name] = stage.fingerprint
        if kind:
            made.setdefault(kind, []).append(name)
        saved = state.get("stages", {}).get(name)
        stage.action, stage.why = _decide(stage, saved, name in chosen, {s.name: s for s in stages})
        if stage.action != "skip":
            try:  # every value checked by the recipe's own parser before anything runs
                stage.parsed = tuple(parse_recipe_args(arguments, args))
            except (ValueError, OSError) as err:
                raise ConfigError(f"stage {name!r}: {err}") from None
        if stage.action != "skip":
            for s in upstream:
                if not (state.get("stages", {}).get(s, {}).get("status") == "done" or s in chosen):
                    raise ConfigError(f"stage {name!r} needs the output of stage {s!r} ({out / s}), which has not "
                                      f"run: run it first (--from {s}, or without --stages)")  # fmt: skip
        stages.append(stage)
    return stages


def _decide(stage: Stage, saved: dict | None, chosen: bool, earlier: dict[str, Stage]) -> tuple[str, str]:
    if not chosen:
        return "skip", "not selected"
    if saved is None:
        return "run", "new"
    if saved.get("fingerprint") != stage.fingerprint:
        return "rerun", _why_rerun(stage, saved, earlier)
    if saved.get("status") == "done":
        return "skip", "done, unchanged"
    if stage.recipe not in DISTRIBUTED:  # only training stages keep checkpoints
        return "restart", "interrupted: runs again"
    from .training.checkpoints import find_resume_checkpoint

    checkpoint = find_resume_checkpoint(stage.output, is_main_process=False)
    if checkpoint is None:
        return "restart", "interrupted before its first checkpoint: starts at step 0"
    return "resume", f"interrupted: resumes from {checkpoint.name}"


def settings_of(args: list[str]) -> dict[str, str]:
    """What a recipe command line sets, as ``{key: value}`` strings: its config file's keys, then its flags (which
    win, as in the recipe). Recorded with each stage, so a rerun can name the keys that changed."""
    flags, key = {}, None
    for arg in args:
        if arg.startswith("--"):
            key = arg[2:]
            flags[key] = None
        elif key is not None:
            flags[key] = arg if flags[key] is None else f"{flags[key]} {arg}"  # a list's values
    try:
        config = yaml.safe_load(Path(flags["config"]).read_text()) if "config" in flags else None
    except (OSError, yaml.YAMLError):
        config = None
    return {**{k: str(v) for k, v in (config if isinstance(config, dict) else {}).items()}, **flags}


def _why_rerun(stage: Stage, saved: dict, earlier: dict[str, Stage]) -> str:
    """What changed since the stage last ran: its keys (old -> new), a stage it follows, or a file it reads."""
    reasons = []
    if "settings" in saved:
        old, new = saved["settings"], settings_of(stage.args)
        changed = [k for k in {**old, **new} if old.get(k) != new.get(k)]
        reasons += [f"{k} {old.get(k, 'unset')} -> {new.get(k, 'unset')}" for k in changed]
    upstream = {s for v in stage.inputs.values() for s in v.split(", ")}
    reruns = [repr(s) for s in earlier if s in upstream and earlier[s].action in ("run", "rerun")]
    if reruns:
        reasons.append(f"reruns because {' and '.join(reruns)} {'reruns' if len(reruns) == 1 else 'rerun'}")
    if not reasons and "settings" in saved:
        files = [Path(a).name for k, a in zip(stage.args, stage.args[1:]) if k in FILE_KEYS]
        reasons.append(f"a file it reads changed ({', '.join(files)})" if files else "its inputs changed")
    return "; ".join(reasons) or "its settings or inputs changed"


def describe(stages: list[Stage]) -> str:
    """The plan as a person reads it: each stage, what happens to it and why, and its inputs."""
    lines = []
    for s in stages:
        wired = "; ".join(f"{k} <- {v}" for k, v in s.inputs.items())
        lines.append(f"  {s.name:<16} {s.action:<7} {s.why}" + (f"  [{wired}]" if wired else ""))
    return "pipeline plan:\n" + "\n".join(lines)


def read_state(out: Path) -> dict:
    """The pipeline's record of its stages in ``output_dir`` (empty for a new pipeline)."""
    try:
        return json.loads((Path(out) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_state(out: Path, state: dict) -> None:
    write_json_atomically(state, Path(out) / STATE_FILE)


def _lock(out: Path, config: str) -> dict:
    """Refuse another pipeline's output_dir (or a second run of this one); returns the state to update."""
    out.mkdir(parents=True, exist_ok=True)
    state = read_state(out)
    if state.get("pipeline") not in (None, config):
        raise ConfigError(f"output_dir {out} belongs to another pipeline ({state['pipeline']}); choose another "
                          "output_dir for this one")  # fmt: skip
    lock = out / LOCK_FILE
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = lock.read_text().strip() or "?"
        if pid.isdigit() and _alive(int(pid)):
            raise ConfigError(
                f"another pipeline (process {pid}) is running in {out}; wait for it, or stop it"
            ) from None
        lock.unlink(missing_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return {"pipeline": config, "stages": state.get("stages", {})}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def run_stage(stage: Stage) -> None:
    """Run one stage's recipe in this process (every process of a launch, or the main one only)."""
    from accelerate import PartialState

    state = PartialState()
    if stage.recipe not in DISTRIBUTED and not state.is_main_process:
        state.wait_for_everyone()
        return
    module = importlib.import_module(f"hfpipe.cli.{RECIPES[stage.recipe][0]}")
    logger.info("stage %s: hfpipe %s %s", stage.name, stage.recipe, " ".join(stage.args))
    module.main(stage.args)
    if stage.recipe not in DISTRIBUTED:
        state.wait_for_everyone()


def run_pipeline(config: str, overrides: dict | None = None, only: list[str] | None = None,
                 start: str | None = None, until: str | None = None, dry_run: bool = False) -> dict:  # fmt: skip
    """Plan, then run the stages that need it, then write the report card. Returns the pipeline's state."""
    from accelerate import PartialState

    from .preflight import check_stages

    spec = load_pipeline(config, overrides)
    out = Path(spec["output_dir"])
    try:
        check_output_dir(out)
    except ValueError as err:
        raise ConfigError(f"pipeline {config}: {err}") from None
    stages = plan(spec, only, start, until)
    print(describe(stages))
    check_stages(stages)  # every stage's inputs, before the first one runs
    if dry_run:
        checked = sum(s.action != "skip" for s in stages)
        print(f"checked the inputs of {checked} stage(s): data, models, output_dir (--dry_run: nothing ran)")
        return read_state(out)
    main = PartialState().is_main_process
    state = _lock(out, spec["_file"]) if main else {"stages": read_state(out).get("stages", {})}
    try:
        for stage in stages:
            if stage.action == "skip":
                continue
            if stage.action == "rerun" and main:
                shutil.rmtree(out / stage.name, ignore_errors=True)  # the pipeline owns output_dir/<stage>
            started = time.time()
            if main:
                attempts = begin_attempt(state["stages"].get(stage.name), stage.action == "resume",
                                         out / stage.name, started)  # fmt: skip
                state["stages"][stage.name] = {"fingerprint": stage.fingerprint, "status": "running",
                                               "recipe": stage.recipe, "output": str(stage.output),
                                               "args": stage.args, "settings": settings_of(stage.args),
                                               "started": started, "attempts": attempts}  # fmt: skip
                _write_state(out, state)
            PartialState().wait_for_everyone()
            attempt = state["stages"][stage.name]["attempts"][-1] if main else {}
            try:
                with heartbeat(attempt, lambda: _write_state(out, state)) if main else nullcontext():
                    run_stage(stage)
            except (Exception, SystemExit) as err:
                if main:
                    end_attempt(state["stages"][stage.name], "failed")
                    _write_state(out, state)
                raise StageError(stage.name, err) from err
            if main:
                record = state["stages"][stage.name]
                end_attempt(record, "done")
                record.update(status="done", finished=time.time())
                _write_state(out, state)
        if main:
            from .report import write_report

            write_report(out, stages, spec.get("report_prompts", 5))
    finally:
        if main:
            (out / LOCK_FILE).unlink(missing_ok=True)
    return state


class StageError(ValueError):
    """A stage failed: the pipeline stops there; the finished stages stay finished."""

    def __init__(self, stage: str, err: BaseException):
        message = str(err).strip() or type(err).__name__
        if isinstance(err, SystemExit):
            message = f"exit code {err.code}"
        super().__init__(f"stage {stage!r} failed: {message} (fix it and run the same command again: the "
                         "finished stages are skipped)")  # fmt: skip
