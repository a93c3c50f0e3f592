"""Perplexity and bits per byte of a causal LM on texts, with a sliding window over long documents.

Each document is scored as ``[bos] + tokens`` so that its first token is predicted too (as lm-eval's
``loglikelihood_rolling`` does) and bits per byte covers every byte. A document longer than the
model's context is cut into windows of ``max_length`` tokens that overlap by ``stride`` tokens: each
window scores only the tokens no earlier window scored (no token counted twice), so every token after
the first window sees at least ``stride`` tokens of context (the Hugging Face perplexity guide's method,
whose windows advance by ``max_length - stride``). ``stride=0`` gives lm-eval's disjoint windows.

Bits per byte = total NLL (nats) / ln 2 / UTF-8 bytes: it does not depend on the tokenizer, so a
character-level and a BPE model compare on the same text.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hfpipe.hardware import fast_bf16_available
from hfpipe.loading import model_context_length
from hfpipe.tokenization import batched

logger = logging.getLogger(__name__)


@dataclass
class PerplexityResult:
    """Totals over a corpus; the metrics are derived from them."""

    nll: float = 0.0  # summed negative log-likelihood, nats
    tokens: int = 0
    bytes: int = 0
    documents: int = 0
    skipped_documents: int = 0  # texts shorter than one token

    @property
    def loss(self) -> float:
        return self.nll / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits_per_byte(self) -> float:
        return self.nll / math.log(2) / self.bytes

    def metrics(self) -> dict[str, float]:
        """The figures for a results table."""
        return {
            "loss": self.loss,
            "perplexity": self.perplexity,
            "bits_per_byte": self.bits_per_byte,
            "eval_tokens": self.tokens,
            "eval_documents": self.documents,
            "skipped_documents": self.skipped_documents,
        }


def sliding_windows(n_tokens: int, max_length: int, step: int) -> list[tuple[int, int, int]]:
    """Windows over ``[bos] + n_tokens`` tokens, each ``step`` tokens after the last: ``(start, end, n_scored)``.

    The window's input is ``ids[start:end]`` (at most ``max_length`` ids); it predicts ``ids[start+1:end+1]``
    and scores the last ``n_scored`` of those predictions. Together the windows score ids 1..n_tokens once.
    """
    if not 1 <= step <= max_length:
        raise ValueError(f"step must be in [1, max_length={max_length}], got {step}")
    windows = []
    scored_end = 1  # ids[1:scored_end] are scored
    first = True
    while scored_end <= n_tokens:
        target_end = min(scored_end + (max_length if first else step), n_tokens + 1)
        start = max(0, target_end - 1 - max_length)
        windows.append((start, target_end - 1, target_end - scored_end))
        scored_end, first = target_end, False
    return windows


def _prefix_id(tokenizer) -> int:
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is None:
        raise ValueError(
            "the tokenizer has neither a bos nor an eos token, so a document's first token has no context; "
            "give it one (tokenizer.add_special_tokens({'eos_token': ...}))"
        )
    return prefix


def context_length(model, tokenizer=None) -> int:
    """The longest input the model takes: its config's ``max_position_embeddings`` (or ``n_positions``)."""
    value = model_context_length(model.config)
    if value is not None:
        return value
    if tokenizer is not None and 0 < getattr(tokenizer, "model_max_length", 0) < 1_000_000:
        return tokenizer.model_max_length
    raise ValueError("cannot tell the model's context length from its config; pass max_length")


@torch.inference_mode()
def _score_batch(model, windows: list[tuple[list[int], int]], pad_id: int, keep_logits: bool) -> float:
    """Summed NLL of a batch of ``(ids, n_scored)`` windows, right-padded (causal: padding is never attended)."""
    width = max(len(ids) for ids, _ in windows)  # inputs + the last target
    batch = torch.full((len(windows), width), pad_id, dtype=torch.long)
    for row, (ids, _) in enumerate(windows):
        batch[row, : len(ids)] = torch.tensor(ids)
    batch = batch.to(model.device)
    inputs, targets = batch[:, :-1], batch[:, 1:]
    same_length = all(len(ids) == width for ids, _ in windows)
    n_keep = max(n for _, n in windows)
    kwargs = {"logits_to_keep": n_keep} if keep_logits and same_length else {}
    logits = model(input_ids=inputs, use_cache=False, **kwargs).logits
    offset = inputs.shape[1] - logits.shape[1]  # logits[:, j] predicts targets[:, offset + j]
    nll = 0.0
    for row, (ids, n_scored) in enumerate(windows):
        end = len(ids) - 1  # number of predictions in this row
        row_logits = logits[row, end - n_scored - offset : end - offset].float()
        row_targets = targets[row, end - n_scored : end]
        nll += F.cross_entropy(row_logits, row_targets, reduction="sum").item()
    return nll


def evaluate_perplexity(
    model,
    tokenizer,
    texts: Iterable[str],
    max_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    bf16: bool | None = None,
    progress: bool = True,
) -> PerplexityResult:
    """Perplexity, loss and bits per byte of ``model`` on ``texts`` (any iterable of strings).

    ``max_length`` defaults to the model's context length and ``stride`` (the context every token after
    the first window keeps) to half of it. ``bf16``
    defaults to ``hfpipe.hardware.fast_bf16_available()``. Texts shorter than one token are skipped and
    counted; no text at all is an error.
    """
    max_length = max_length or context_length(model, tokenizer)
    stride = max_length // 2 if stride is None else stride
    if not 0 <= stride < max_length:
        raise ValueError(f"stride must be in [0, max_length={max_length}), got {stride}")
    bf16 = fast_bf16_available() if bf16 is None else bf16
    prefix = _prefix_id(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix
    keep_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    result = PerplexityResult()
    total = len(texts) if hasattr(texts, "__len__") else None
    bar = tqdm(total=total, desc="perplexity", unit="doc", disable=not progress)
    try:
        for chunk in batched(texts, 256):
            encoded = tokenizer(chunk, add_special_tokens=False, verbose=False)["input_ids"]
            windows = []
            for text, tokens in zip(chunk, encoded):
                if not tokens:
                    result.skipped_documents += 1
                    continue
                ids = [prefix, *tokens]
                windows += [
                    (ids[s : e + 1], n)
                    for s, e, n in sliding_windows(len(tokens), max_length, max_length - stride)
                ]
                result.tokens += len(tokens)
                result.bytes += len(text.encode("utf-8"))
                result.documents += 1
            windows.sort(key=lambda w: len(w[0]), reverse=True)  # equal lengths batch without padding
            with autocast:
                for i in range(0, len(windows), batch_size):
                    result.nll += _score_batch(model, windows[i : i + batch_size], pad_id, keep_logits)
            bar.update(len(chunk))
            bar.set_postfix(tokens=result.tokens, refresh=False)
    finally:
        bar.close()
        model.train(was_training)
    if result.documents + result.skipped_documents == 0:
        raise ValueError("the evaluation dataset is empty; give it at least one document with text")
    if result.documents == 0:
        raise ValueError(
            f"all {result.skipped_documents} evaluation documents are shorter than one token; nothing to score"
        )
    if result.skipped_documents:
        logger.warning("skipped %d documents shorter than one token", result.skipped_documents)
    return result


def block_perplexity(model, blocks: torch.Tensor, batch_size: int = 8) -> float:
    """exp(mean next-token loss) of ``model`` over ``blocks`` (a ``(n, block_size)`` tensor of token ids), each
    block scored alone from its second token on: the disjoint windows of :func:`evaluate_perplexity`."""
    was_training = model.training
    model.eval()
    keep_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    windows = [(row.tolist(), blocks.shape[1] - 1) for row in blocks]
    try:
        nll = sum(
            _score_batch(model, windows[i : i + batch_size], 0, keep_logits)
            for i in range(0, len(windows), batch_size)
        )
    finally:
        model.train(was_training)
    return math.exp(nll / (len(windows) * (blocks.shape[1] - 1)))
