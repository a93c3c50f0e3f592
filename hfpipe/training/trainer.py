"""``PretrainTrainer``: transformers' Trainer plus a finite-loss guard and throughput/MFU/perplexity logs."""

from __future__ import annotations

import math
import time

import torch
from transformers import Trainer, default_data_collator


def collate_blocks(features: list[dict]) -> dict:
    """Stack packed blocks into a batch; ids stored as int32 (half the disk) become int64 for the loss."""
    batch = default_data_collator(features)
    return {
        k: v.long() if v.dtype in (torch.int32, torch.int16, torch.uint8) else v for k, v in batch.items()
    }


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class PretrainTrainer(Trainer):
    """A ``Trainer`` that stops on a NaN/inf loss and logs tokens/s, MFU, tokens seen and perplexity.

    Args:
        tokens_per_step: tokens consumed by one optimizer step across all processes.
        flops_per_token: training FLOPs per token (see ``throughput.flops_per_token``).
        peak_flops: the machine's FLOP/s peak for MFU; None leaves MFU out.
    """

    def __init__(
        self,
        *args,
        tokens_per_step: int,
        flops_per_token: float | None = None,
        peak_flops: float | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.tokens_per_step = tokens_per_step
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self._last_log = None  # (time, step) of the previous training log
        self._eval_seconds = 0.0

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._last_log is None:
            self._last_log = (time.perf_counter(), self.state.global_step)
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            # Raised before the optimizer step and any save: the last checkpoint on disk is still good.
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at step {self.state.global_step + 1}; stopped. "
                f"The last good checkpoint is kept in {self.args.output_dir}. Lower learning_rate, raise "
                "warmup_steps or set max_grad_norm, then resume"
            )
        return loss

    def evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self._eval_seconds += time.perf_counter() - start

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "eval_loss" in logs:
            logs["eval_perplexity"] = math.exp(min(logs["eval_loss"], 50.0))
        if "loss" in logs:
            now, step = time.perf_counter(), self.state.global_step
            logs["tokens_seen"] = step * self.tokens_per_step
            if self._last_log is not None and step > self._last_log[1]:
                seconds = now - self._last_log[0] - self._eval_seconds
                tokens_per_second = (step - self._last_log[1]) * self.tokens_per_step / max(seconds, 1e-9)
                logs["tokens_per_second"] = round(tokens_per_second, 1)
                if self.flops_per_token and self.peak_flops:
                    logs["mfu"] = round(tokens_per_second * self.flops_per_token / self.peak_flops, 4)
            self._last_log, self._eval_seconds = (now, step), 0.0
        super().log(logs, *args, **kwargs)
