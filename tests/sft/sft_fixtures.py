"""Tiny tokenizers, models and data for the SFT tests (imported by tests/sft and tests/recipes)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.tokenization import build_char_tokenizer, train_bpe_tokenizer

COLOURS = ["red", "blue", "green", "black", "white"]
THINGS = ["cat", "dog", "sky", "car", "hat"]


def alpaca_records(n: int = 60, seed: int = 0) -> list[dict]:
    """Learnable instruction data: name the colour given in the input; a third without input."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        colour, thing = rng.choice(COLOURS), rng.choice(THINGS)
        if i % 3 == 0:
            records.append({"instruction": f"Say {colour}.", "input": "", "output": f"{colour}"})
        else:
            records.append(
                {
                    "instruction": "Name the colour.",
                    "input": f"The {thing} is {colour}.",
                    "output": f"It is {colour}.",
                }
            )
    return records


def write_json(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records))
    return path


def corpus_texts() -> list[str]:
    from hfpipe.data.instructions import format_alpaca_prompt

    texts = [format_alpaca_prompt(r) + r["output"] for r in alpaca_records(200, seed=1)]
    return texts + ["<|user|>\n<|assistant|>\n<|system|>\n"] * 5


def bpe_tokenizer(vocab_size: int = 400):
    return train_bpe_tokenizer(corpus_texts(), vocab_size=vocab_size, model_max_length=128)


def char_tokenizer():
    """One token per character: label masks can be checked character by character."""
    chars = (
        "".join(corpus_texts())
        + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;!?#|<>+=\n'-()"
    )
    return build_char_tokenizer(chars, model_max_length=512)


def tiny_gpt_config(vocab_size: int, context: int = 128) -> GPTConfig:
    return GPTConfig(
        vocab_size=vocab_size, context_length=context, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0
    )


def save_hfpipe_model(path: Path, tokenizer=None, context: int = 128) -> Path:
    tokenizer = tokenizer or bpe_tokenizer()
    GPTForCausalLM(tiny_gpt_config(len(tokenizer), context)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_gpt2_model(path: Path, context: int = 128) -> Path:
    """A random GPT2LMHeadModel whose tokenizer pads with eos and has no chat template (as GPT-2's)."""
    tokenizer = bpe_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = None
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=context, n_embd=32, n_layer=2, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_llama_model(path: Path, context: int = 128) -> Path:
    """A random LlamaForCausalLM (not converted by hfpipe) with a pad-less, template-less tokenizer."""
    tokenizer = bpe_tokenizer()
    tokenizer.pad_token = None
    tokenizer.chat_template = None
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=context,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
