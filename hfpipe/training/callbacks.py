"""Trainer callbacks: the book's ``generate_and_print_sample`` at every evaluation."""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


def generate_sample(model, tokenizer, prompt: str, max_new_tokens: int = 50) -> str:
    """Greedy continuation of ``prompt`` (the text after the prompt), capped at the model's context."""
    was_training = model.training
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    room = model.config.context_length - inputs["input_ids"].shape[1]
    try:
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=max(1, min(max_new_tokens, room)),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
    finally:
        model.train(was_training)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


class SampleTextCallback(TrainerCallback):
    """Print a greedy continuation of a fixed prompt after each evaluation, to watch the model learn."""

    def __init__(self, tokenizer, prompt: str, max_new_tokens: int = 50):
        self.tokenizer, self.prompt, self.max_new_tokens = tokenizer, prompt, max_new_tokens
        self.samples: list[tuple[int, str]] = []

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is None or not self.prompt:
            return
        # Every rank runs it (a sharded model needs all ranks); only the main one prints.
        text = generate_sample(model, self.tokenizer, self.prompt, self.max_new_tokens)
        self.samples.append((state.global_step, text))
        if state.is_world_process_zero:
            logger.info("sample at step %d: %s%s", state.global_step, self.prompt, text.replace("\n", " ⏎ "))
