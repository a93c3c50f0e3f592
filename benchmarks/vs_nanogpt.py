"""recipes/pretrain.py on recipes/configs/shakespeare_char.yaml beside nanoGPT's own train.py on its CPU command:
wall time, where it goes (benchmarks/pretrain_profile.py), and the loss of both final models on the same held-out
windows. Used by bench_pretrain.py's tinyshakespeare section.

nanoGPT is a checkout of https://github.com/karpathy/nanoGPT (unmodified; --nanogpt DIR or $NANOGPT_DIR: hfpipe does
not ship it). Both runs start as separate processes with the same
number of torch threads; by default they run at the same time, one thread each on this 2-core machine, so that
the load of other jobs hits both alike (``concurrent=False`` runs them one after the other).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NANOGPT_ENV = "NANOGPT_DIR"  # a checkout of karpathy/nanoGPT
PROFILER = HERE / "pretrain_profile.py"
CONFIG = REPO / "recipes" / "configs" / "shakespeare_char.yaml"
# The modern preset with Muon and its own (fewer) steps: judged by the time it takes to reach nanoGPT's loss.
MODERN_CONFIG = REPO / "recipes" / "configs" / "shakespeare_char_modern.yaml"
FULL_STEPS = 2000
BLOCK = 64
EVAL_INTERVAL = 250  # both configs'
VALIDATION_SHARE = 0.1  # both split the text by position: the last 10 % of its characters


def nanogpt_flags(steps: int, compile: bool = False) -> list[str]:
    """nanoGPT's README command for a CPU (``--compile=False``; ``True`` for the compiled variant)."""
    return [
        "config/train_shakespeare_char.py", "--device=cpu", f"--compile={compile}", "--eval_iters=20",
        "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
        f"--max_iters={steps}", f"--lr_decay_iters={steps}", "--dropout=0.0",
    ]  # fmt: skip


def short_run_eval(steps: int, flag: str) -> list[str]:
    """A run shorter than one evaluation interval (250) evaluates, and nanoGPT checkpoints, at its end."""
    return [flag.format(steps)] if steps < EVAL_INTERVAL else []


@dataclass
class Run:
    """One process to launch: the profiler on one side, with its log and region times in ``work``."""

    name: str
    side: str  # hfpipe or nanogpt
    args: list[str]
    work: Path
    out: Path  # the run's output directory (hfpipe: the model; nanogpt: ckpt.pt)
    nanogpt_dir: Path | None = None
    result: dict = field(default_factory=dict)

    def command(self) -> list[str]:
        cmd = [sys.executable, str(PROFILER), self.side, str(self.work / f"{self.name}.json")]
        if self.nanogpt_dir is not None:
            cmd += ["--nanogpt-dir", str(self.nanogpt_dir)]
        return cmd + ["--", *self.args]


def nanogpt_checkout(path: Path | None = None) -> Path:
    """The nanoGPT checkout to run: ``path``, or ``$NANOGPT_DIR``; one line saying how to get it otherwise."""
    path = path or (Path(os.environ[NANOGPT_ENV]) if os.environ.get(NANOGPT_ENV) else None)
    if path is None or not (path / "train.py").is_file():
        raise FileNotFoundError(
            f"nanoGPT is not at {path or '(no --nanogpt / $NANOGPT_DIR given)'}: git clone "
            "https://github.com/karpathy/nanoGPT and pass --nanogpt DIR (or set NANOGPT_DIR)"
        )
    return path


def prepare_nanogpt(shared: Path, work: Path, source: Path | None = None) -> tuple[Path, float]:
    """Copy nanoGPT to ``work/nanogpt`` with tinyshakespeare as its input.txt and run its prepare.py; returns the
    directory and prepare.py's wall seconds."""
    target = work / "nanogpt"
    shutil.copytree(nanogpt_checkout(source), target, ignore=shutil.ignore_patterns("__pycache__", ".git"),
                    dirs_exist_ok=True)  # fmt: skip
    shutil.copyfile(shared / "tinyshakespeare.txt", target / "data" / "shakespeare_char" / "input.txt")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "data/shakespeare_char/prepare.py"], cwd=target, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"nanoGPT's prepare.py failed:\n{proc.stderr[-3000:]}")
    return target, time.perf_counter() - start


def nanogpt_run(name: str, nanogpt_dir: Path, work: Path, steps: int, compile: bool) -> Run:
    out = work / f"{name}-out"
    args = [*nanogpt_flags(steps, compile), f"--out_dir={out}", *short_run_eval(steps, "--eval_interval={}")]
    return Run(name, "nanogpt", args, work, out, nanogpt_dir=nanogpt_dir)


def hfpipe_run(
    name: str, shared: Path, work: Path, steps: int | None, bf16: bool, compile: bool, config: Path = CONFIG
) -> Run:
    """The recipe on ``config`` as a user runs it; only the paths, the dtype (forced) and, for a reduced run,
    max_steps are given on the command line (``steps`` None: the config's own)."""
    out = work / f"{name}-out"
    args = ["--config", str(config), "--dataset_name", str(shared / "tinyshakespeare.txt")]
    args += ["--output_dir", str(out), "--bf16", "true" if bf16 else "false"]
    if steps is not None and steps != FULL_STEPS:
        args += ["--max_steps", str(steps), *short_run_eval(steps, "--eval_steps={}")]
    if compile:
        args += ["--torch_compile", "true"]
    return Run(name, "hfpipe", args, work, out)


def launch(runs: list[Run], threads: int | None, concurrent: bool) -> None:
    """Run each ``Run`` as its own process (``OMP_NUM_THREADS=threads``), at the same time when ``concurrent``;
    stores the wall seconds and the profiler's region times in ``run.result``."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)

    def one(run: Run) -> None:
        log = run.work / f"{run.name}.log"
        # a cache of its own: a compiled run pays the compilation a first run pays
        run_env = {**env, "TORCHINDUCTOR_CACHE_DIR": str(run.work / f"{run.name}.inductor-cache")}
        start = time.perf_counter()
        with open(log, "w") as f:
            proc = subprocess.run(run.command(), cwd=REPO, env=run_env, stdout=f, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{run.name} failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
        run.result = {"wall": wall, **json.loads((run.work / f"{run.name}.json").read_text())}

    if concurrent:
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            for future in [pool.submit(one, run) for run in runs]:
                future.result()
    else:
        for run in runs:
            one(run)


def validation_text(shared: Path) -> str:
    text = (shared / "tinyshakespeare.txt").read_text(encoding="utf-8")
    return text[int(len(text) * (1 - VALIDATION_SHARE)) :]


@torch.no_grad()
def windows_loss(logits_of, ids: list[int], limit: int | None, batch: int = 64) -> tuple[float, int]:
    """Mean next-token loss over disjoint windows of ``BLOCK`` inputs (``BLOCK + 1`` ids: inputs, targets) of
    ``ids``; at most ``limit`` windows. ``logits_of`` maps a (batch, BLOCK) id tensor to logits."""
    data = torch.tensor(ids, dtype=torch.long)
    starts = list(range(0, len(ids) - BLOCK, BLOCK))[:limit]
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        rows = torch.stack([data[s : s + BLOCK + 1] for s in starts[i : i + batch]])
        logits = logits_of(rows[:, :-1].contiguous())
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1), reduction="sum"
        )
        count += rows[:, 1:].numel()
    return float(total) / count, len(starts)


def hfpipe_heldout(out: Path, text: str, limit: int | None) -> tuple[float, int]:
    """The recipe's final model (``out``) on the held-out windows, encoded by its own tokenizer."""
    from hfpipe.loading import load_model, load_tokenizer

    model, tokenizer = load_model(str(out)).eval(), load_tokenizer(str(out))
    ids = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids
    assert len(ids) == len(text), "the character-level tokenizer should give one id per character"
    return windows_loss(lambda x: model(input_ids=x).logits, ids, limit)


def nanogpt_heldout(nanogpt_dir: Path, out: Path, text: str, limit: int | None) -> tuple[float, int, int]:
    """nanoGPT's saved checkpoint (the one with its best validation estimate) on the held-out windows, encoded
    with its meta.pkl; returns the loss, the windows and the checkpoint's iteration."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", nanogpt_dir / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    checkpoint = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    model = module.GPT(module.GPTConfig(**checkpoint["model_args"]))
    state = {k.removeprefix("_orig_mod."): v for k, v in checkpoint["model"].items()}
    model.load_state_dict(state)
    model.eval()
    with open(nanogpt_dir / "data" / "shakespeare_char" / "meta.pkl", "rb") as f:
        stoi = pickle.load(f)["stoi"]
    # nanoGPT's forward without targets returns only the last position's logits: pass dummy targets for all
    loss, windows = windows_loss(lambda x: model(x, x)[0], [stoi[c] for c in text], limit)
    return loss, windows, checkpoint["iter_num"]


# The regions of pretrain_profile.py, in the order of a run; per-step regions get ms/step too.
STARTUP = [
    "imports", "startup (settings, set-up)", "tokenizer", "data preparation", "model build",
    "MFU peak measurement", "Trainer init", "training set-up (optimizer, dataloader, loggers)",
]  # fmt: skip
PER_STEP = [
    "data loading", "forward + loss", "backward", "gradient clipping", "NaN guard (on_pre_optimizer_step)",
    "optimizer step", "lr schedule + zero_grad", "callbacks (step begin/end)", "logging",
    "training loop bookkeeping",
]  # fmt: skip
PERIODIC = ["evaluation", "checkpoint"]
END = ["training end (loss plot, last log)", "sample", "final save", "after training"]


def where_the_time_goes(runs: list[Run]) -> list[str]:
    """A table of the seconds of each region (and ms per optimizer step for the per-step ones), two columns per
    run; the rows add up to each run's wall time."""
    known = STARTUP + PER_STEP + PERIODIC + END
    extra = sorted({k for r in runs for k in r.result["seconds"] if k not in known and k != "end"})

    def cells(seconds_of, per_step: bool) -> list[str]:
        out = []
        for r in runs:
            s = seconds_of(r)
            steps = r.result["steps"]
            out += [
                "" if s is None else f"{s:,.1f}",
                f"{s / steps * 1e3:,.1f}" if per_step and s and steps else "",
            ]
        return out

    rows = []
    for region in known + extra:
        row = cells(lambda r, k=region: r.result["seconds"].get(k), region in PER_STEP)
        if any(row):
            rows.append([region, *row])
    step_total = lambda r: sum(r.result["seconds"].get(k, 0.0) for k in PER_STEP)  # noqa: E731
    rows.append(["**training steps (the rows marked per step)**", *cells(step_total, True)])
    rows.append(
        ["interpreter start and exit", *cells(lambda r: r.result["wall"] - r.result["wall_inside"], False)]
    )
    rows.append(["**wall time of the process**", *cells(lambda r: r.result["wall"], False)])
    head = ["region"] + [f"{r.name} {unit}" for r in runs for unit in ("s", "ms/step")]
    return ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (2 * len(runs))] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


@dataclass
class Plan:
    """What the tinyshakespeare section runs."""

    steps: int = FULL_STEPS
    eval_windows: int | None = None  # held-out windows for the final comparison (None: all 1,742)
    threads: int | None = None  # torch threads of each run (None: 1 when concurrent, else torch's default)
    concurrent: bool = True  # the nanoGPT and hfpipe runs of a pair at the same time
    bf16: bool = True  # also the recipe in bf16 autocast (quality check against fp32)
    modern: bool = True  # also shakespeare_char_modern.yaml beside the first pair: time to nanoGPT's loss
    compile: bool = False  # also the pair with torch.compile (nanoGPT --compile=True, --torch_compile true)
    curves_png: Path | None = None  # where the validation-loss-against-wall-time plot goes


def reported_loss(run: Run) -> float | None:
    """The last validation loss the run reported itself (nanoGPT: its log; hfpipe: trainer_state.json)."""
    if run.side == "nanogpt":
        lines = [
            line for line in (run.work / f"{run.name}.log").read_text().splitlines() if "val loss" in line
        ]
        return float(lines[-1].rsplit("val loss", 1)[1]) if lines else None
    history = json.loads((run.out / "trainer_state.json").read_text())["log_history"]
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    return evals[-1] if evals else None


def run_all(shared: Path, work: Path, plan: Plan, progress, update, nanogpt: Path | None = None) -> dict:
    """Prepare nanoGPT's data, run each pair (nanoGPT, hfpipe) and the bf16 run, and evaluate every final model on
    the same held-out windows. ``progress(message)`` reports, ``update(state)`` is called after each phase."""
    work.mkdir(parents=True, exist_ok=True)
    threads = plan.threads or (1 if plan.concurrent else None)
    state: dict = {"plan": plan, "threads": threads, "runs": []}
    nanogpt_dir, state["prepare"] = prepare_nanogpt(shared, work, nanogpt)
    text = validation_text(shared)
    pairs = [("nanoGPT", "hfpipe", False)] + (
        [("nanoGPT compiled", "hfpipe compiled", True)] if plan.compile else []
    )
    for nano_name, hf_name, compile in pairs:
        slug = lambda name: name.replace(" ", "-")  # noqa: E731
        runs = [
            nanogpt_run(slug(nano_name), nanogpt_dir, work, plan.steps, compile),
            hfpipe_run(slug(hf_name), shared, work, plan.steps, bf16=False, compile=compile),
        ]
        runs[0].name, runs[1].name = nano_name, hf_name
        if plan.modern and not compile:  # a third process beside them: the load hits all three alike
            reduced = plan.steps if plan.steps != FULL_STEPS else None
            runs.append(hfpipe_run("hfpipe-modern", shared, work, reduced, bf16=False, compile=False,
                                   config=MODERN_CONFIG))  # fmt: skip
            runs[2].name = "hfpipe modern"
        progress(
            f"tinyshakespeare: {nano_name} and {hf_name}, {'together' if plan.concurrent else 'in turn'}"
        )
        launch(runs, threads, plan.concurrent)
        finish(runs, nanogpt_dir, text, plan, state)
        update(state)
    if plan.modern and plan.curves_png:
        plot_curves(state["runs"], plan.curves_png)
    if plan.bf16:
        run = hfpipe_run("hfpipe-bf16", shared, work, plan.steps, bf16=True, compile=False)
        run.name = "hfpipe bf16"
        progress("tinyshakespeare: hfpipe bf16 (slow where bf16 is emulated)")
        launch([run], threads, concurrent=False)
        finish([run], nanogpt_dir, text, plan, state)
        update(state)
    return state


def finish(runs: list[Run], nanogpt_dir: Path, text: str, plan: Plan, state: dict) -> None:
    """Held-out loss and reported loss of each finished run; nanoGPT's wall gains its prepare.py."""
    for run in runs:
        if run.side == "nanogpt":
            run.result["seconds"]["data preparation"] = state["prepare"]
            run.result["wall"] += state["prepare"]
            run.result["curve"] = [
                [t + state["prepare"], step, loss] for t, step, loss in run.result["curve"]
            ]
            run.result["heldout"], run.result["windows"], run.result["checkpoint_step"] = nanogpt_heldout(
                nanogpt_dir, run.out, text, plan.eval_windows
            )
        else:
            run.result["heldout"], run.result["windows"] = hfpipe_heldout(run.out, text, plan.eval_windows)
            run.result["checkpoint_step"] = run.result["steps"]
        run.result["reported"] = reported_loss(run)
        state["runs"].append(run)


def first_time_at(curve: list[list[float]], target: float) -> float | None:
    """Seconds since the process started at which a run's own validation estimate first reached ``target``."""
    return next((t for t, _, loss in curve if loss <= target), None)


def plot_curves(runs: list[Run], path: Path) -> Path:
    """Validation loss against wall time of every run with a curve, nanoGPT's final loss as a line; one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for run in runs:
        curve = run.result.get("curve") or []
        if curve:
            ax.plot([t for t, _, _ in curve], [loss for _, _, loss in curve], marker="o", ms=3,
                    label=f"{run.name} ({run.result['steps']:,} steps, {run.result['wall']:.0f} s)")  # fmt: skip
            ax.axvline(run.result["wall"], color=ax.lines[-1].get_color(), ls=":", lw=1)
    nano = next((r for r in runs if r.name == "nanoGPT"), None)
    if nano and nano.result.get("reported") is not None:
        ax.axhline(nano.result["reported"], color="grey", ls="--", lw=1,
                   label=f"target: nanoGPT's final validation loss {nano.result['reported']:.3f}")  # fmt: skip
    ax.set_xlabel("wall time since the process started (s); dotted: the run's end")
    ax.set_ylabel("validation loss (each run's own estimate)")
    ax.set_ylim(top=min(3.0, ax.get_ylim()[1]))
    ax.set_title("Character-level tinyshakespeare: validation loss against wall time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


TIME_TO_LOSS_GOAL = 0.5  # issue 21: hfpipe modern reaches nanoGPT's loss in <= 0.5x nanoGPT's wall time


def render_time_to_loss(runs: dict[str, Run], plan: Plan, status) -> list[str]:
    """The time-to-loss lines: the modern config's whole run against nanoGPT's, at nanoGPT's held-out loss."""
    if "hfpipe modern" not in runs or "nanoGPT" not in runs:
        return []
    hf, ng = runs["hfpipe modern"].result, runs["nanoGPT"].result
    ratio = hf["wall"] / ng["wall"]
    reached = hf["heldout"] <= ng["heldout"] + 0.005
    seen = first_time_at(hf.get("curve", []), ng["reported"]) if ng.get("reported") is not None else None
    lines = [
        "",
        "### Time to nanoGPT's loss: the modern preset with Muon",
        "",
        f"`recipes/configs/shakespeare_char_modern.yaml` ran beside the two runs above (a third process, one "
        f"thread, the same data and evaluation windows), its own {hf['steps']:,} steps, start to finish (start-up, "
        f"tokenizer, data, evaluation and the final save included). The target is nanoGPT's {FULL_STEPS:,}-step "
        "model: its held-out loss on the windows above. The three processes shared the machine until the modern "
        "run ended; after that the other two had it to themselves, which favours them: the ratio is, if anything, "
        "pessimistic for hfpipe.",
        "",
        f"- **time to nanoGPT's loss: {ratio:.2f}x nanoGPT's wall time** ({hf['wall']:.0f} s vs {ng['wall']:.0f} s; "
        f"goal <= {TIME_TO_LOSS_GOAL}x: {status(ratio <= TIME_TO_LOSS_GOAL and reached)}); held-out loss "
        f"{hf['heldout']:.4f} vs nanoGPT's {ng['heldout']:.4f} ({'reached' if reached else 'NOT reached'}; "
        "within 0.005 counts as reached).",
    ]
    if seen is not None:
        lines.append(f"- by its own validation estimate it first reached nanoGPT's final estimate "
                     f"({ng['reported']:.4f}) {seen:.0f} s after it started.")  # fmt: skip
    if plan.curves_png:
        lines.append(f"- loss against wall time of every run: `{plan.curves_png.name}`.")
    return lines


PUBLISHED_LOSS = 1.88  # nanoGPT's README, for its CPU command
WALL_GOAL = 0.8  # issue 17: the recipe's wall <= 0.8x nanoGPT's
BF16_LOSS_TOLERANCE = 0.02  # issue 8: bf16 ends within this of fp32


def render(state: dict, quick: bool) -> list[str]:
    """The section of results/pretrain.md: the runs side by side, the goals, and where the time goes."""
    plan, runs = state["plan"], {r.name: r for r in state["runs"]}
    status = lambda ok: "(not judged: reduced run)" if quick else "ok" if ok else "MISSED"  # noqa: E731
    reduced = plan.steps != FULL_STEPS
    windows = next((r.result["windows"] for r in runs.values()), None)
    lines = [
        "",
        "## Character-level tinyshakespeare: recipes/pretrain.py beside nanoGPT's train.py",
        "",
        f"nanoGPT (a checkout of karpathy/nanoGPT, unmodified) runs its README command for a CPU: `python train.py "
        f"config/train_shakespeare_char.py {' '.join(nanogpt_flags(plan.steps)[1:])}` (eager: "
        "`--compile=False`), after its `data/shakespeare_char/prepare.py` (counted in its wall time). hfpipe runs "
        "`recipes/pretrain.py --config recipes/configs/shakespeare_char.yaml` with only the data path, output "
        "directory and `--bf16 false` given. Both: 4 layers, 4 heads, 128 dims, context 64, batch 12 (768 tokens "
        "per step), lr 1e-3 cosine to 1e-4, warm-up 100, AdamW beta2 0.99, weight decay 0.1, clipping 1.0, fp32, "
        f"{plan.steps:,} steps (nanoGPT's loop runs one more); each evaluates every 250 steps (nanoGPT: 20 random "
        "batches of each split; hfpipe: its first 480 validation blocks, the same 30,720 tokens) and checkpoints "
        "as its config says.",
        "",
        f"Each process: `OMP_NUM_THREADS={state['threads'] or 'unset'}`; the runs of a pair (and the modern run "
        "beside the first pair) ran "
        + (
            "at the same time, so the load of other jobs on this shared machine hit both alike."
            if plan.concurrent
            else "one after the other."
        )  # fmt: skip
        + f" Held-out loss: both final models (nanoGPT: the checkpoint it saved, i.e. its best validation "
        f"estimate) on the same {windows or '?':,} disjoint windows of 64 characters of the last 10 % of the text "
        "(each model's own character ids), mean next-character cross-entropy.",
    ]
    if reduced:
        lines += ["", f"**Reduced run: {plan.steps:,} steps instead of {FULL_STEPS:,}**: the losses are not "
                  "comparable with nanoGPT's published 1.88."]  # fmt: skip
    lines += [
        "",
        "| run | wall time | vs nanoGPT (same compile) | held-out loss | vs nanoGPT | loss it reported | steps |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    peer = {"hfpipe": "nanoGPT", "hfpipe compiled": "nanoGPT compiled", "hfpipe bf16": "nanoGPT",
            "hfpipe modern": "nanoGPT"}  # fmt: skip
    for name, run in runs.items():
        r, ref = run.result, runs.get(peer.get(name, ""))
        ratio = f"{r['wall'] / ref.result['wall']:.2f}x" if ref else ""
        diff = f"{r['heldout'] - ref.result['heldout']:+.4f}" if ref else ""
        reported = f"{r['reported']:.4f}" if r.get("reported") is not None else ""
        lines.append(
            f"| {name} | {r['wall'] / 60:.1f} min | {ratio} | {r['heldout']:.4f} | {diff} | {reported} | "
            f"{r['checkpoint_step']:,} of {r['steps']:,} |"
        )
    lines += [""]
    if "hfpipe" in runs and "nanoGPT" in runs:
        hf, ng = runs["hfpipe"].result, runs["nanoGPT"].result
        ratio = hf["wall"] / ng["wall"]
        lines.append(
            f"- **hfpipe / nanoGPT wall time, both eager: {ratio:.2f}x** (goal <= {WALL_GOAL}x: "
            f"{status(ratio <= WALL_GOAL)}); held-out loss {hf['heldout'] - ng['heldout']:+.4f} vs nanoGPT "
            f"(goal: equal or lower: {status(hf['heldout'] <= ng['heldout'] + 0.005)}, equal = within 0.005)."
        )
    if "nanoGPT" in runs and not reduced:
        lines.append(
            f"- nanoGPT's README reports {PUBLISHED_LOSS} for this command; here its own estimate ended at "
            f"{runs['nanoGPT'].result['reported']:.4f}."
        )
    lines += render_time_to_loss(runs, plan, status)
    if "hfpipe compiled" in runs and "nanoGPT compiled" in runs:
        hf, ng = runs["hfpipe compiled"].result, runs["nanoGPT compiled"].result
        lines.append(f"- both with torch.compile: {hf['wall'] / ng['wall']:.2f}x (compilation included).")
    if "hfpipe bf16" in runs and "hfpipe" in runs:
        diff = runs["hfpipe bf16"].result["heldout"] - runs["hfpipe"].result["heldout"]
        lines.append(
            f"- bf16 - fp32 held-out loss of the recipe: {diff:+.4f} (goal abs <= {BF16_LOSS_TOLERANCE}: "
            f"{status(abs(diff) <= BF16_LOSS_TOLERANCE)})."
        )
    lines += [
        "",
        "### Where the time goes",
        "",
        "Measured inside each run by benchmarks/pretrain_profile.py: wall-clock wrappers on the functions each "
        "step calls (Trainer's data fetch, compute_loss, Accelerator.backward, clipping, the callbacks' "
        "on_pre_optimizer_step, the optimizer; nanoGPT's get_batch, GPT.forward, Tensor.backward, "
        "clip_grad_norm_, AdamW.step). A region's time excludes the regions it calls; inside evaluation and "
        'checkpointing everything counts as that. "training loop bookkeeping" is the rest of the loop: '
        "Trainer's (or nanoGPT's) own code between the wrapped calls. nanoGPT's data preparation is its "
        "prepare.py process; hfpipe's evaluation includes the sample text it generates.",
        "",
        *where_the_time_goes(list(runs.values())),
    ]
    return lines
