"""Test answers, as the book does: greedy answers to held-out prompts, saved as JSON, and two checks.

- the share of answers that ended with eos (the model learned to stop);
- the share that leaked template text ("### Instruction", a role header): the model went on to
  invent the next turn, usually because eos was never trained.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..io import write_json_atomically
from ..loading import model_context_length

LEAK_MARKERS = (
    "### Instruction", "### Input", "### Response",
    "<|user|>", "<|assistant|>", "<|system|>", "<|im_start|>", "<|im_end|>",
)  # fmt: skip
ANSWERS_FILE = "test_responses.json"
logger = logging.getLogger(__name__)


def answer_prompt(record: dict, tokenizer) -> tuple[list[int], dict] | None:
    """Prompt token ids of a normalised test record and its fields for the JSON; None for plain text."""
    if "text" in record:
        return None
    if "messages" in record or isinstance(record.get("prompt"), list):
        if "messages" in record:
            msgs = record["messages"]
            last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
            prompt, reference = msgs[:last], msgs[last]["content"]
        else:
            prompt = record["prompt"]
            reference = next(m["content"] for m in record["completion"] if m["role"] == "assistant")
        ids = tokenizer.apply_chat_template(
            prompt, tokenize=True, add_generation_prompt=True, return_dict=True
        )
        user = next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
        fields = {"instruction": record.get("instruction", user), "input": record.get("input", "")}
        return list(ids["input_ids"]), {**fields, "reference": reference}
    ids = tokenizer(record["prompt"], add_special_tokens=False)["input_ids"]
    fields = {"instruction": record.get("instruction", record["prompt"]), "input": record.get("input", "")}
    return ids, {**fields, "reference": record["completion"]}


def leaks_template(text: str) -> bool:
    """True when ``text`` holds template text that belongs to the prompt, not to an answer."""
    return any(marker in text for marker in LEAK_MARKERS)


def _stop_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | {tokenizer.eos_token_id}


def _batches(prompts: list, batch_size: int) -> list[list]:
    order = sorted(prompts, key=lambda item: len(item[1][0]))  # similar lengths batch with little padding
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _left_padded(batch: list, longest: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    input_ids = torch.full((len(batch), longest), pad, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, (_, (ids, _)) in enumerate(batch):  # left padding: every answer starts at the same column
        input_ids[row, longest - len(ids) :] = torch.tensor(ids)
        attention_mask[row, longest - len(ids) :] = 1
    return input_ids, attention_mask


def _log_estimate(first_seconds: float, batches: list[list], n_prompts: int) -> None:
    rest = len(batches) - 1
    if rest:  # batches grow longer, so this is a lower bound as often as an estimate
        logger.info("test answers: the first batch took %.1f s; about %.0f s for the %d prompts",
                    first_seconds, first_seconds * len(batches), n_prompts)  # fmt: skip


@torch.no_grad()
def generate_answers(
    model, tokenizer, records: list[dict], max_new_tokens: int = 256, batch_size: int = 8
) -> list[dict]:
    """Greedy answers (stopping at eos) to ``records``: instruction, input, reference, response, ended_with_eos.

    Prompts of similar length are answered together (left padding, the KV cache), ``batch_size`` at a time;
    the log says how many prompts and, after the first batch, about how long the rest takes.
    """
    prompts = [(i, p) for i, r in enumerate(records) if (p := answer_prompt(r, tokenizer)) is not None]
    context = model_context_length(model.config) or 1024
    stop = _stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    out: dict[int, dict] = {}
    batches = _batches(prompts, batch_size)
    if prompts:
        logger.info("test answers: %d prompts, %d at a time, up to %d new tokens each",
                    len(prompts), batch_size, max_new_tokens)  # fmt: skip
    for number, batch in enumerate(tqdm(batches, desc="test answers", disable=len(batches) < 2)):
        started = time.perf_counter()
        longest = max(len(ids) for _, (ids, _) in batch)
        room = min(max_new_tokens, context - longest)
        if room < 1:  # the prompt fills the context: no room to answer
            for i, (_, fields) in batch:
                out[i] = {**fields, "response": "", "ended_with_eos": False, "leaked_template": False}
            continue
        input_ids, attention_mask = _left_padded(batch, longest, pad)
        generated = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=attention_mask.to(model.device),
            max_new_tokens=room,
            do_sample=False,
            use_cache=True,
            eos_token_id=sorted(stop),
            pad_token_id=pad,
        )[:, longest:].tolist()
        for (i, (_, fields)), new in zip(batch, generated):
            end = next((k for k, t in enumerate(new) if t in stop), None)
            answer = new if end is None else new[:end]
            raw = tokenizer.decode(answer, skip_special_tokens=False)
            out[i] = {
                **fields,
                "response": tokenizer.decode(answer, skip_special_tokens=True).strip(),
                "ended_with_eos": end is not None,
                "leaked_template": leaks_template(raw),
            }
        if number == 0:
            _log_estimate(time.perf_counter() - started, batches, len(prompts))
    model.train(was_training)
    return [out[i] for i, _ in prompts]


def answer_stats(answers: list[dict]) -> dict:
    """Share of answers that ended with eos and share that leaked template text."""
    n = len(answers)
    return {
        "test_answers": n,
        "eos_share": sum(a["ended_with_eos"] for a in answers) / n if n else 0.0,
        "template_leak_share": sum(a["leaked_template"] for a in answers) / n if n else 0.0,
    }


def save_answers(answers: list[dict], path: str | os.PathLike) -> Path:
    """Write ``answers`` as indented JSON (temp file + rename: never half-written)."""
    return write_json_atomically(answers, path)
