"""Trainer callbacks that any trainer accepts: ``Trainer``, trl's ``SFTTrainer``, ``DPOTrainer``, ``RewardTrainer``.

    trainer = SFTTrainer(..., callbacks=standard_callbacks(tokenizer, sample_prompt="Every effort moves you"))

- ``NonFiniteLossCallback``: stops on a NaN/inf loss *before* the optimizer step, so the weights and
  the last checkpoint on disk stay good.
- ``ThroughputCallback``: tokens/s (evaluation and saving excluded), tokens seen and MFU in the logs.
- ``PerplexityCallback``: ``eval_perplexity`` next to every ``eval_loss``.
- ``SampleTextCallback``: the book's ``generate_and_print_sample`` after each evaluation.
- ``LossPlotCallback``: ``loss.png`` in ``output_dir`` when training ends.

Values that callbacks add in ``on_log`` reach the loggers (TensorBoard...) and ``log_history`` when the
callbacks run before them: pass them with ``callbacks=`` and they are moved first by ``add_callbacks``,
or call ``add_callbacks(trainer, ...)`` on a built trainer.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..loading import model_context_length
from .plot import plot_losses

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def _record(state, logs: dict, values: dict) -> None:
    """Add ``values`` to the current log event and to the entry Trainer already appended to ``log_history``."""
    logs.update(values)
    if state.log_history and state.log_history[-1].get("step") == state.global_step:
        state.log_history[-1].update(values)


def add_callbacks(trainer, callbacks) -> None:
    """Insert ``callbacks`` (or move them, if already added) right after Trainer's flow control, so the
    logging integrations and the progress printer see the values they add."""
    handler = trainer.callback_handler
    for cb in callbacks:
        if cb in handler.callbacks:
            handler.callbacks.remove(cb)
    handler.callbacks[1:1] = list(callbacks)


class NonFiniteLossCallback(TrainerCallback):
    """Raise ``NonFiniteLossError`` when gradients (hence the loss) are NaN/inf, before the optimizer step."""

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if model is None or args.fp16:  # fp16's grad scaler skips overflowing steps by design
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack(torch._foreach_norm(grads))).all():
            raise NonFiniteLossError(
                f"training loss became NaN or infinite at step {state.global_step + 1}; stopped before the "
                f"optimizer step. The last good checkpoint is kept in {args.output_dir}. Lower learning_rate, "
                "raise warmup_steps or set max_grad_norm, then run again to resume"
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise NonFiniteLossError(f"training loss is {loss} at step {state.global_step}; stopped")


class ThroughputCallback(TrainerCallback):
    """Log ``tokens_per_second`` (time spent evaluating and saving excluded), ``tokens_seen`` and ``mfu``.

    Tokens come from Trainer's own count (``include_num_input_tokens_seen``), or from ``tokens_per_step``
    for fixed-size batches. MFU needs ``flops_per_token`` and the hardware's ``peak_flops``.
    """

    def __init__(self, tokens_per_step: int | None = None, flops_per_token=None, peak_flops=None):
        self.tokens_per_step, self.flops_per_token, self.peak_flops = (
            tokens_per_step,
            flops_per_token,
            peak_flops,
        )
        self._last = None  # (time, tokens) at the previous training log
        self._paused = 0.0
        self._mark = None

    def _tokens(self, args, state) -> int | None:
        if args.include_num_input_tokens_seen not in ("no", False, None):
            return int(state.num_input_tokens_seen)
        return state.global_step * self.tokens_per_step if self.tokens_per_step else None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.tokens_per_step is None and args.include_num_input_tokens_seen in ("no", False):
            args.include_num_input_tokens_seen = "non_padding"  # Trainer counts per step from here on
        self._mark = time.perf_counter()
        self._last, self._paused = (self._mark, self._tokens(args, state)), 0.0

    def on_step_end(self, args, state, control, **kwargs):
        self._mark = time.perf_counter()

    def _pause(self):
        now = time.perf_counter()
        if self._mark is not None:
            self._paused += now - self._mark
        self._mark = now

    def on_evaluate(self, args, state, control, **kwargs):
        self._pause()

    def on_save(self, args, state, control, **kwargs):
        self._pause()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs or self._last is None:
            return
        now, tokens = time.perf_counter(), self._tokens(args, state)
        if tokens is None:
            return
        values = {"tokens_seen": tokens}
        seconds = now - self._last[0] - self._paused
        if self._last[1] is not None and tokens > self._last[1] and seconds > 0:
            tps = (tokens - self._last[1]) / seconds
            values["tokens_per_second"] = round(tps, 1)
            if self.flops_per_token and self.peak_flops:
                values["mfu"] = round(tps * self.flops_per_token / self.peak_flops, 4)
        _record(state, logs, values)
        self._last, self._paused, self._mark = (now, tokens), 0.0, now


class PerplexityCallback(TrainerCallback):
    """Add ``<prefix>_perplexity = exp(<prefix>_loss)`` for every evaluation loss in the logs."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        values = {
            k[: -len("loss")] + "perplexity": math.exp(min(v, 50.0))
            for k, v in logs.items()
            if k.startswith("eval_") and k.endswith("_loss") and isinstance(v, (int, float))
        }
        if values:
            _record(state, logs, values)


def generate_sample(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 50,
    temperature: float = 0.8,
    top_k: int | None = 25,
    seed: int = 123,
) -> str:
    """Continuation of ``prompt`` (the text after it), capped at the model's context.

    Samples with temperature and top-k from a fixed seed, as the book's later chapters do (greedy decoding of a
    small model loops); ``temperature=0`` is greedy. The caller's random state is left untouched.
    """
    was_training = model.training
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    context = model_context_length(model.config) or 1024
    room = context - inputs["input_ids"].shape[1]
    knobs = (
        {"do_sample": False}
        if temperature <= 0
        else {"do_sample": True, "temperature": temperature, "top_k": top_k}
    )
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            out = model.generate(
                **inputs,
                max_new_tokens=max(1, min(max_new_tokens, room)),
                pad_token_id=tokenizer.pad_token_id,
                **knobs,
            )
    finally:
        model.train(was_training)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


class SampleTextCallback(TrainerCallback):
    """Log a continuation of a fixed prompt after each evaluation, to watch the model learn."""

    def __init__(
        self, tokenizer, prompt: str, max_new_tokens: int = 50, temperature: float = 0.8, top_k: int = 25
    ):
        self.tokenizer, self.prompt, self.max_new_tokens = tokenizer, prompt, max_new_tokens
        self.temperature, self.top_k = temperature, top_k
        self.samples: list[tuple[int, str]] = []

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is None or not self.prompt:
            return
        # Every rank runs it (a sharded model needs all ranks); only the main one prints.
        text = generate_sample(
            model, self.tokenizer, self.prompt, self.max_new_tokens, self.temperature, self.top_k, args.seed
        )
        self.samples.append((state.global_step, text))
        if state.is_world_process_zero:
            logger.info("sample at step %d: %s%s", state.global_step, self.prompt, text.replace("\n", " ⏎ "))


class LossPlotCallback(TrainerCallback):
    """Draw training and validation loss (against tokens seen when counted, else steps) to ``output_dir/loss.png``."""

    def __init__(self, filename: str = "loss.png"):
        self.filename = filename
        self.path: Path | None = None

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
            self.path = plot_losses(state.log_history, Path(args.output_dir) / self.filename)


def standard_callbacks(
    tokenizer=None,
    sample_prompt: str | None = None,
    sample_max_new_tokens: int = 40,
    sample_temperature: float = 0.8,
    tokens_per_step: int | None = None,
    flops_per_token: float | None = None,
    peak_flops: float | None = None,
) -> list[TrainerCallback]:
    """The callbacks every hfpipe recipe uses: NaN guard, throughput, perplexity, loss plot, optional sample."""
    callbacks = [
        NonFiniteLossCallback(),
        ThroughputCallback(tokens_per_step, flops_per_token, peak_flops),
        PerplexityCallback(),
        LossPlotCallback(),
    ]
    if tokenizer is not None and sample_prompt:
        callbacks.append(
            SampleTextCallback(tokenizer, sample_prompt, sample_max_new_tokens, sample_temperature)
        )
    return callbacks
