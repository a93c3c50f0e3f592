"""A dynamic batching generation engine: concurrent requests decode together over one KV cache.

One worker thread owns the model. Each loop it
1. admits waiting requests (up to ``max_batch_size`` sequences): their prompts are prefilled together,
   left-padded, and their cache rows joined to the running batch (shorter rows padded on the left);
2. decodes one token for every running sequence in a single forward pass;
3. drops the sequences that finished (eos, a stop string, ``max_tokens``, the context) or were cancelled.

A request never waits for another to finish: it joins at the next step. transformers' own continuous
batching (``generate_batch``, paged attention) also works with this model and gives the same tokens; this
engine needs only the model's ordinary forward and a ``DynamicCache`` (so it serves any causal LM, quantized
ones included), and on CPU it is faster (benchmarks/results/serve.md).

Results go back as events through each request's ``emit`` callback (called on the worker thread):
``("text", index, delta)``, ``("finish", index, finish_reason, completion_tokens)``, ``("error", None, message)``.
Text is only emitted once it cannot become part of a stop string, so streamed and complete texts are equal.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F
from transformers import DynamicCache
from transformers.generation.logits_process import TopPLogitsWarper

from ..compat import cache_kwargs
from ..loading import model_context_length

logger = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """More requests are waiting than the engine accepts."""


@dataclass
class SamplingParams:
    """How one request samples; ``temperature == 0`` is greedy."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Request:
    """A unit of work: one or more prompts (each already ``n`` times) sharing sampling parameters."""

    prompts: list[list[int]]  # one entry per returned choice, in choice order
    params: SamplingParams
    emit: Callable[..., None]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Stop generating for this request (its rows leave the batch at the next step)."""
        self.cancelled.set()


@dataclass
class _Sequence:
    request: Request
    index: int
    prompt_len: int
    generator: torch.Generator | None
    generated: list[int] = field(default_factory=list)
    sent: int = 0  # characters of text already emitted
    done: bool = False


class Engine:
    """Owns the model on a worker thread and batches every request submitted to it."""

    def __init__(self, model, tokenizer, max_batch_size: int = 16, max_waiting: int = 64):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.context_length = _context_length(model)
        self.max_batch_size = max_batch_size
        self.max_waiting = max_waiting
        eos = model.generation_config.eos_token_id
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.device = next(model.parameters()).device
        self._waiting: collections.deque[Request] = collections.deque()
        self._wakeup = threading.Condition()
        self._rows: list[_Sequence] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # (rows, cached length) attention mask
        self._next: torch.Tensor | None = None  # (rows,) the tokens to feed at the next step
        self._stopping = False
        self.stats = {"steps": 0, "generated_tokens": 0, "max_batch_size_seen": 0}
        self._thread = threading.Thread(target=self._run, name="hfpipe-engine", daemon=True)
        self._thread.start()

    # -- the public side, called from any thread ------------------------------------------------------

    def submit(self, request: Request) -> None:
        """Queue ``request``; raises ``QueueFullError`` when ``max_waiting`` requests already wait."""
        if len(request.prompts) > self.max_batch_size:
            raise ValueError(f"a request may ask for at most {self.max_batch_size} completions at once")
        with self._wakeup:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(f"{len(self._waiting)} requests are already waiting")
            self._waiting.append(request)
            self._wakeup.notify()

    def load(self) -> dict:
        """Running sequences and waiting requests, for /health."""
        return {"running": len(self._rows), "waiting": len(self._waiting), **self.stats}

    def shutdown(self) -> None:
        """Stop the worker thread (running requests get an error event)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        self._thread.join(timeout=10)

    # -- the worker thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopping and not self._waiting and not self._rows:
                    self._wakeup.wait()
                if self._stopping:
                    break
                admitted = self._take_waiting()
            try:
                with torch.inference_mode():
                    if admitted:
                        self._prefill(admitted)
                    if self._rows:
                        self._decode_step()
            except Exception as err:  # the worker must survive anything a batch does
                logger.exception("generation failed; failing the %d running sequences", len(self._rows))
                for request in {id(s.request): s.request for s in self._rows}.values():
                    request.emit("error", None, f"generation failed: {err}")
                for request in admitted:
                    request.emit("error", None, f"generation failed: {err}")
                self._rows, self._cache, self._mask, self._next = [], None, None, None
        for row in self._rows:
            row.request.emit("error", None, "the server is shutting down")

    def _take_waiting(self) -> list[Request]:
        taken, free = [], self.max_batch_size - len(self._rows)
        while self._waiting and len(self._waiting[0].prompts) <= free:
            request = self._waiting.popleft()
            if not request.cancelled.is_set():
                taken.append(request)
                free -= len(request.prompts)
        return taken

    def _prefill(self, requests: list[Request]) -> None:
        rows, prompts = [], []
        for request in requests:
            seed = request.params.seed
            for index, prompt in enumerate(request.prompts):
                generator = None
                if request.params.temperature > 0:
                    generator = torch.Generator(self.device)
                    # each choice of a seeded request gets its own reproducible stream
                    generator.manual_seed((seed if seed is not None else secrets.randbits(62)) + index)
                rows.append(_Sequence(request, index, len(prompt), generator))
                prompts.append(prompt)
        width = max(map(len, prompts))
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt) :] = torch.tensor(prompt)
            mask[i, width - len(prompt) :] = 1
        cache = DynamicCache(config=self.model.config)
        logits = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            use_cache=True,
            **cache_kwargs(cache),
            logits_to_keep=1,
        ).logits[:, -1]
        self._join(rows, cache, mask.to(self.device))
        self._advance(logits, first=len(self._rows) - len(rows))

    def _join(self, rows: list[_Sequence], cache: DynamicCache, mask: torch.Tensor) -> None:
        """Append new rows to the running batch, left-padding whichever side is shorter."""
        if not self._rows:
            self._rows, self._cache, self._mask = rows, cache, mask
            self._next = torch.zeros(len(rows), dtype=torch.long, device=self.device)
            return
        width = max(self._mask.shape[1], mask.shape[1])
        pad = lambda t, dim: F.pad(t, (0, 0) * dim + (width - t.shape[-1 - dim], 0))  # noqa: E731
        for old, new in zip(self._cache.layers, cache.layers):
            old.keys = torch.cat([pad(old.keys, 1), pad(new.keys, 1)])
            old.values = torch.cat([pad(old.values, 1), pad(new.values, 1)])
        self._mask = torch.cat([pad(self._mask, 0), pad(mask, 0)])
        self._next = torch.cat([self._next, torch.zeros(len(rows), dtype=torch.long, device=self.device)])
        self._rows = self._rows + rows

    def _decode_step(self) -> None:
        self._mask = torch.cat([self._mask, self._mask.new_ones(len(self._rows), 1)], dim=1)
        logits = self.model(
            input_ids=self._next[:, None],
            attention_mask=self._mask,
            use_cache=True,
            **cache_kwargs(self._cache),
        ).logits[:, -1]
        self.stats["steps"] += 1
        self.stats["max_batch_size_seen"] = max(self.stats["max_batch_size_seen"], len(self._rows))
        self._advance(logits, first=0)

    def _advance(self, logits: torch.Tensor, first: int) -> None:
        """Sample a token for rows ``first..`` from ``logits`` (one row each), then drop finished rows."""
        for i, row_logits in enumerate(logits, start=first):
            row = self._rows[i]
            if row.request.cancelled.is_set():
                continue
            token = self._sample(row_logits, row)
            self._next[i] = token
            self._append(row, token)
            self.stats["generated_tokens"] += 1
        keep = [i for i, row in enumerate(self._rows) if not row.done and not row.request.cancelled.is_set()]
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._rows, self._cache, self._mask, self._next = [], None, None, None
            return
        index = torch.tensor(keep, device=self.device)
        self._rows = [self._rows[i] for i in keep]
        self._cache.batch_select_indices(index)
        self._mask, self._next = self._mask[index], self._next[index]
        start = int(self._mask.any(dim=0).long().argmax())  # leading columns that are padding in every row
        if start:
            self._mask = self._mask[:, start:]
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]

    def _sample(self, logits: torch.Tensor, row: _Sequence) -> int:
        params = row.request.params
        if params.temperature == 0:
            return int(logits.argmax())
        scores = logits.float()[None] / params.temperature
        if params.top_p < 1.0:
            scores = TopPLogitsWarper(params.top_p)(None, scores)
        return int(torch.multinomial(scores.softmax(-1), 1, generator=row.generator))

    def _append(self, row: _Sequence, token: int) -> None:
        """Record ``token``; emit the text that is now final; finish the row if it is done."""
        params, emit = row.request.params, row.request.emit
        row.generated.append(token)  # eos too: it is a generated token in the usage count
        if token in self.eos_ids:
            return self._finish(row, self._text(row), "stop")
        text = self._text(row)
        hits = [pos for pos in (text.find(s) for s in params.stop) if pos >= 0]
        if hits:
            return self._finish(row, text[: min(hits)], "stop")
        if (
            len(row.generated) >= params.max_tokens
            or row.prompt_len + len(row.generated) >= self.context_length
        ):
            return self._finish(row, text, "length")
        # hold back what could still grow into a stop string, and an incomplete UTF-8 character
        safe = min(len(text) - max((len(s) - 1 for s in params.stop), default=0), len(text.rstrip("\ufffd")))
        if safe > row.sent:
            emit("text", row.index, text[row.sent : safe])
            row.sent = safe

    def _finish(self, row: _Sequence, text: str, reason: str) -> None:
        if len(text) > row.sent:
            row.request.emit("text", row.index, text[row.sent :])
        row.request.emit("finish", row.index, reason, len(row.generated))
        row.done = True

    def _text(self, row: _Sequence) -> str:
        return self.tokenizer.decode(row.generated, skip_special_tokens=True)


def _context_length(model) -> int:
    value = model_context_length(model.config)
    if value is not None:
        return value
    raise ValueError(f"cannot tell the context length of {type(model).__name__}: its config has none")
