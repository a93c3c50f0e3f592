"""Where the wall time of a pretraining run goes, for the recipe and for nanoGPT's train.py, by the same clock.

    python benchmarks/pretrain_profile.py hfpipe OUT.json -- --config recipes/configs/shakespeare_char.yaml ...
    python benchmarks/pretrain_profile.py nanogpt OUT.json --nanogpt-dir DIR -- config/train_shakespeare_char.py ...

Runs the real entry point in this process (``recipes/pretrain.py``'s ``main``, or nanoGPT's ``train.py`` executed
from its directory as ``python train.py`` would) after wrapping the functions each step calls with a wall clock,
and writes the seconds and calls of each region to OUT.json. A region's time excludes the regions it calls, so the
regions add up to the process's wall time; what no wrapper covers inside the training loop is the loop's own
bookkeeping. Inside evaluation, checkpointing and sampling every wrapped call counts as that region (a forward
pass there is evaluation). About 15 wrapped calls per step cost microseconds against a step of ~100 ms.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

START = time.perf_counter()  # before the heavy imports: they are part of the measured startup

# Regions that absorb everything they call (a forward pass inside evaluation is evaluation).
ABSORBING = ("evaluation", "checkpoint", "sample")
SET_UP = "training set-up (optimizer, dataloader, loggers)"  # from the loop's start to its first batch
LOOP = "training loop bookkeeping"  # the loop's own code between the wrapped calls


class Regions:
    """Exclusive wall time per region: entering a region pauses the one it was called from."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[list] = [["imports", START]]  # the base region: what no wrapper covers
        self.curve: list[list[float]] = []  # [seconds since start, step, validation loss] at each evaluation

    def record_validation(self, step: int, loss: float) -> None:
        """One point of the loss curve against wall time."""
        self.curve.append([time.perf_counter() - START, step, float(loss)])

    def switch_base(self, label: str) -> None:
        """Charge the time since the last switch to the base region, then continue under ``label``."""
        assert len(self.stack) == 1, f"{label!r} begins inside {self.stack[-1][0]!r}"
        now = time.perf_counter()
        self.seconds[self.stack[0][0]] += now - self.stack[0][1]
        self.stack[0] = [label, now]

    def wrap(self, owner, name: str, label: str, base_after: str | None = None) -> None:
        """Replace ``owner.name`` by a wrapper that times its calls as ``label``; from its first call made
        outside any region on, the uncovered time counts as ``base_after``."""
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if any(frame[0] in ABSORBING for frame in self.stack[1:]):
                return fn(*args, **kwargs)
            if base_after and len(self.stack) == 1 and self.stack[0][0] != base_after:
                self.switch_base(base_after)
            self._enter(label)
            try:
                return fn(*args, **kwargs)
            finally:
                self._exit()

        setattr(owner, name, timed)

    def _enter(self, label: str) -> None:
        now = time.perf_counter()
        parent = self.stack[-1]
        self.seconds[parent[0]] += now - parent[1]
        self.stack.append([label, now])

    def _exit(self) -> None:
        now = time.perf_counter()
        label, start = self.stack.pop()
        self.seconds[label] += now - start
        self.calls[label] += 1
        self.stack[-1][1] = now

    def finish(self) -> dict:
        self.switch_base("end")
        return {
            "seconds": dict(self.seconds),
            "calls": dict(self.calls),
            "wall_inside": time.perf_counter() - START,
            "curve": self.curve,
        }


def instrument_hfpipe(regions: Regions) -> None:
    """Wrap what Trainer's loop and the recipe call: data, forward, backward, clip, NaN guard, optimizer, ..."""
    import torch
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer
    from transformers import Trainer
    from transformers.trainer_callback import CallbackHandler

    from hfpipe import pretraining
    from hfpipe.data import prepare
    from hfpipe.training import callbacks, run, throughput

    w = regions.wrap
    w(pretraining, "get_tokenizer", "tokenizer")
    # pretrain() imports these when it runs: wrapped where they are defined, it gets the wrapped ones
    w(prepare, "build_lm_datasets", "data preparation")
    w(pretraining, "build_model", "model build")
    w(throughput, "measure_matmul_peak", "MFU peak measurement")
    w(callbacks, "generate_sample", "sample")
    w(run, "finish_run", "final save")
    w(Trainer, "__init__", "Trainer init")
    w(Trainer, "get_batch_samples", "data loading", base_after=LOOP)
    w(Trainer, "compute_loss", "forward + loss")
    w(Accelerator, "backward", "backward")
    w(Trainer, "_clip_grad_norm", "gradient clipping")
    w(Trainer, "_get_grad_norm", "gradient clipping")
    w(CallbackHandler, "on_pre_optimizer_step", "NaN guard (on_pre_optimizer_step)")
    w(AcceleratedOptimizer, "step", "optimizer step")
    w(torch.optim.lr_scheduler.LRScheduler, "step", "lr schedule + zero_grad")
    w(torch.nn.Module, "zero_grad", "lr schedule + zero_grad")
    for event in ("on_step_begin", "on_step_end", "on_optimizer_step"):
        w(CallbackHandler, event, "callbacks (step begin/end)")
    w(Trainer, "_maybe_log_save_evaluate", "logging")
    original_evaluate = Trainer.evaluate

    @functools.wraps(original_evaluate)
    def evaluate(self, *args, **kwargs):
        metrics = original_evaluate(self, *args, **kwargs)
        if "eval_loss" in metrics:
            regions.record_validation(self.state.global_step, metrics["eval_loss"])
        return metrics

    Trainer.evaluate = evaluate
    w(Trainer, "_evaluate", "evaluation")
    w(Trainer, "_save_checkpoint", "checkpoint")
    w(CallbackHandler, "on_save", "checkpoint")
    w(Trainer, "_finalize_training", "training end (loss plot, last log)")
    w(Trainer, "create_optimizer_and_scheduler", SET_UP)
    w(Accelerator, "prepare", SET_UP)
    w(CallbackHandler, "on_train_begin", SET_UP)
    regions.switch_base("startup (settings, set-up)")
    original_loop = Trainer._inner_training_loop

    @functools.wraps(original_loop)
    def loop(self, *args, **kwargs):
        regions.switch_base(SET_UP)
        try:
            return original_loop(self, *args, **kwargs)
        finally:
            regions.switch_base("after training")

    Trainer._inner_training_loop = loop


def run_hfpipe(argv: list[str], regions: Regions) -> None:
    instrument_hfpipe(regions)
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "recipes"))
    import pretrain

    trainer = pretrain.main(argv)
    regions.steps = trainer.state.global_step


def run_nanogpt(argv: list[str], regions: Regions, nanogpt_dir: Path) -> None:
    """Execute nanoGPT's train.py as ``python train.py ARGS`` would, from ``nanogpt_dir``, with its functions
    timed. get_batch and estimate_loss are globals of the script: they are wrapped right after their definition."""
    os.chdir(nanogpt_dir)
    sys.path.insert(0, str(nanogpt_dir))
    import torch

    nanogpt_model = importlib.import_module("model")  # nanoGPT's model.py, from its checkout

    w = regions.wrap
    w(nanogpt_model.GPT, "__init__", "model build")
    w(nanogpt_model.GPT, "forward", "forward + loss")
    w(nanogpt_model.GPT, "configure_optimizers", SET_UP)
    w(torch.Tensor, "backward", "backward")
    w(torch.nn.utils, "clip_grad_norm_", "gradient clipping")
    w(torch.optim.AdamW, "step", "optimizer step")
    w(torch.optim.Optimizer, "zero_grad", "lr schedule + zero_grad")
    w(torch, "save", "checkpoint")
    regions.switch_base("startup (settings, set-up)")
    source = (nanogpt_dir / "train.py").read_text()
    hooks = {
        "# init these up here": "_loop_start()\nget_batch = _timed(get_batch, 'data loading')\n",
        "# learning rate decay scheduler": "estimate_loss = _timed(_recorded(estimate_loss), 'evaluation')\n",
    }
    for marker, hook in hooks.items():
        assert source.count(marker) == 1, f"nanoGPT's train.py changed: {marker!r} not found once"
        source = source.replace(marker, hook + marker)

    def recorded(fn):  # estimate_loss: {"train": ..., "val": ...} at the global iter_num
        def estimate():
            losses = fn()
            regions.record_validation(namespace["iter_num"], losses["val"])
            return losses

        return estimate

    def timed(fn, label):
        holder = type("Holder", (), {"fn": staticmethod(fn)})
        regions.wrap(holder, "fn", label, base_after=LOOP if label == "data loading" else None)
        return holder.fn

    def loop_start():  # before the model is built; from the first batch on, the loop
        regions.switch_base(SET_UP)

    printed = timed(print, "logging")
    namespace = {"__name__": "__main__", "__file__": str(nanogpt_dir / "train.py"), "_timed": timed,
                 "_loop_start": loop_start, "print": printed, "_recorded": recorded}  # fmt: skip
    sys.argv = ["train.py", *argv]
    exec(compile(source, str(nanogpt_dir / "train.py"), "exec"), namespace)
    regions.steps = namespace["iter_num"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["hfpipe", "nanogpt"])
    parser.add_argument("output", type=Path, help="JSON file for the region times")
    parser.add_argument("--nanogpt-dir", type=Path, help="directory holding nanoGPT's train.py and data/")
    parser.epilog = "Arguments after -- go to the entry point."
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args, rest = parser.parse_args(argv[:split]), argv[split + 1 :]
    regions = Regions()
    regions.steps = 0
    if args.side == "hfpipe":
        run_hfpipe(rest, regions)
    else:
        run_nanogpt(rest, regions, args.nanogpt_dir.resolve())
    result = regions.finish()
    result["steps"] = regions.steps
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.output)


if __name__ == "__main__":
    main()
