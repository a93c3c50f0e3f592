"""lm-evaluation-harness on a model already loaded, with hfpipe's local tasks (no network needed).

Local tasks live in ``hfpipe/evaluation/tasks`` (one YAML per task, named like the file):
``hfpipe_mc`` (multiple choice) and ``hfpipe_bpb`` (bits per byte, ``loglikelihood_rolling``).
Named Hub tasks (``hellaswag``, ``arc_easy``, ``mmlu``, ...) are passed to lm-eval as they are and
need the network to fetch their datasets. The same tasks run from the command line::

    lm_eval --model hf --model_args pretrained=DIR,trust_remote_code=True \
        --include_path hfpipe/evaluation/tasks --tasks hfpipe_mc,hfpipe_bpb
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

logger = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
# Per-sample figures lm-eval reports next to each metric; the table keeps the metric only.
_SKIP_KEYS = ("alias", "samples", "sample_len")


def local_tasks() -> list[str]:
    """Names of the tasks shipped with hfpipe (they run offline)."""
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def _require_lm_eval():
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise ImportError(
            "lm-evaluation-harness is not installed; install it with `pip install 'hfpipe[eval]'`"
        ) from None


def task_manager(tasks: list[str]):
    """A ``TaskManager`` that knows hfpipe's local tasks, and lm-eval's own ones when a task needs them."""
    _require_lm_eval()
    from lm_eval.tasks import TaskManager

    local = set(local_tasks())
    needs_defaults = any(t not in local for t in tasks)  # indexing lm-eval's ~10k YAMLs takes seconds
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=needs_defaults)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ValueError(
            f"unknown lm-eval task(s) {unknown}; hfpipe's local tasks (offline) are {sorted(local)}, "
            "and lm-eval's named tasks (hellaswag, arc_easy, mmlu, ...; `lm_eval ls tasks`) need the network"
        )
    return manager


def flatten_results(results: dict) -> dict[str, float]:
    """``{"task/metric": value}`` from lm-eval's ``results`` (filters other than ``none`` keep their suffix)."""
    flat = {}
    for task, metrics in results["results"].items():
        for key, value in metrics.items():
            if key in _SKIP_KEYS or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            metric, _, filt = key.partition(",")
            name = f"{task}/{metric}" if filt in ("", "none") else f"{task}/{metric},{filt}"
            flat[name] = float(value)
    return flat


def chance_accuracy(task: str) -> float | None:
    """Accuracy of a uniform guess on a local multiple-choice task (None for other tasks)."""
    if task != "hfpipe_mc":
        return None
    import json

    lines = (TASKS_DIR / "hfpipe_mc.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    return sum(1 / len(item["choices"]) for item in items) / len(items)


def git_commit_quietly() -> str | None:
    """lm-eval's record of the working directory's git commit, without git's complaint outside a repository."""
    try:
        out = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_lm_eval(
    model,
    tokenizer,
    tasks: list[str],
    batch_size: int = 8,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    max_length: int | None = None,
) -> dict[str, float]:
    """Run lm-eval ``tasks`` on an in-memory model; returns ``{"task/metric": value}``.

    The model is wrapped in lm-eval's own ``HFLM`` (so the figures are lm-eval's), loaded once for all
    tasks. An unknown task name is an error that lists the local tasks; a Hub task whose dataset cannot
    be fetched is an error that says so.
    """
    if not tasks:
        raise ValueError("no lm-eval tasks given; name at least one, e.g. " + ", ".join(local_tasks()))
    manager = task_manager(tasks)
    import lm_eval
    import lm_eval.evaluator
    from lm_eval.models.huggingface import HFLM

    remote = [t for t in tasks if t not in local_tasks()]
    lm_eval_logger = logging.getLogger("lm_eval")
    level = lm_eval_logger.level
    lm_eval_logger.setLevel(logging.ERROR)  # its warnings about being given a model object are expected
    git_hash = getattr(lm_eval.evaluator, "get_git_commit_hash", None)
    if (
        git_hash is not None
    ):  # it runs `git describe`, whose "fatal: not a git repository" reaches the terminal
        lm_eval.evaluator.get_git_commit_hash = git_commit_quietly
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length,
                  device=str(model.device))  # fmt: skip
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=list(tasks),
            task_manager=manager,
            limit=limit,
            num_fewshot=num_fewshot,
            log_samples=False,
            bootstrap_iters=0,
        )
    except (ConnectionError, OSError) as err:
        if not remote:
            raise
        raise ConnectionError(
            f"lm-eval task(s) {remote} could not fetch their datasets from the Hub ({type(err).__name__}: "
            f"{err}); run them online, or run the local tasks {local_tasks()} offline"
        ) from err
    finally:
        lm_eval_logger.setLevel(level)
        if git_hash is not None:
            lm_eval.evaluator.get_git_commit_hash = git_hash
    metrics = flatten_results(results)
    for task in tasks:
        chance = chance_accuracy(task)
        if chance is not None:
            metrics[f"{task}/chance"] = chance
    return metrics
