"""Tiny preference data and start models for the preference tests (tests/preference and tests/recipes)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.data.instructions import format_alpaca_prompt
from hfpipe.tokenization import train_bpe_tokenizer

COLOURS = ["red", "blue", "green", "black", "white"]
THINGS = ["cat", "dog", "sky", "car", "hat"]


def preference_records(n: int = 40, seed: int = 0) -> list[dict]:
    """The book's record shape; chosen is polite, rejected rude (a difference a tiny model can learn)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        colour, thing = rng.choice(COLOURS), rng.choice(THINGS)
        answer = f"It is {colour}."
        records.append({
            "instruction": "Name the colour." if i % 4 else f"Say {colour}.",
            "input": f"The {thing} is {colour}." if i % 4 else "",
            "output": answer,
            "chosen": f"{answer} Thank you.",
            "rejected": f"{answer} Go away, fool.",
        })  # fmt: skip
    return records


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records))
    return path


def tokenizer():
    texts = [
        format_alpaca_prompt(r) + r["chosen"] + " " + r["rejected"] for r in preference_records(100, seed=1)
    ]
    return train_bpe_tokenizer(texts, vocab_size=300, model_max_length=128)


def save_start_model(path: Path, sft: bool = True, seed: int = 0) -> Path:
    """A tiny GPT + tokenizer saved to ``path``; ``sft`` writes results.json as an SFT output would."""
    tok = tokenizer()
    config = GPTConfig.from_preset(
        "tiny", vocab_size=len(tok), context_length=128, emb_dim=32, n_heads=2, n_layers=2,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    GPTForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    if sft:
        (path / "results.json").write_text('{"model": "sft", "stage": "sft", "metrics": {}}')
    return path


def common_args(out: Path, *extra: str) -> list[str]:
    """Training settings every recipe test shares: CPU, fp32, quiet, no saving unless asked."""
    return [
        "--output_dir", str(out), "--bf16", "false", "--report_to", "none", "--disable_tqdm", "true",
        "--activation_checkpointing", "false", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "8", "--logging_steps", "1", "--seed", "123", *extra,
    ]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models only lose to thread synchronisation (badly so on a busy machine): use one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
