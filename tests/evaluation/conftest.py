"""Tiny models and tokenizers for the evaluation tests, built offline from hfpipe's local text."""

from pathlib import Path

import pytest
import torch

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.tokenization import build_char_tokenizer, train_bpe_tokenizer

TEXT = (Path(__file__).resolve().parents[2] / "hfpipe/evaluation/tasks/hfpipe_text.txt").read_text(
    encoding="utf-8"
)
PARAGRAPHS = [p.strip() for p in TEXT.split("\n\n") if p.strip()]


def tiny_model(tokenizer, context_length: int = 64, seed: int = 0) -> GPTForCausalLM:
    """A random 2-layer GPT for ``tokenizer``, with larger-than-default weights so predictions differ by context."""
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=len(tokenizer), context_length=context_length, emb_dim=32, n_heads=2, n_layers=2,
        drop_rate=0.0, initializer_range=0.2, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return GPTForCausalLM(config).eval()


@pytest.fixture(scope="session")
def make_model():
    """``make_model(tokenizer, context_length=64, seed=0)``: a tiny random GPT."""
    return tiny_model


@pytest.fixture(scope="session")
def paragraphs() -> list[str]:
    return PARAGRAPHS


@pytest.fixture(scope="session")
def bpe_tokenizer():
    return train_bpe_tokenizer(PARAGRAPHS * 3, vocab_size=320, min_frequency=2, model_max_length=64)


@pytest.fixture(scope="session")
def char_tokenizer():
    return build_char_tokenizer(TEXT, model_max_length=64)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, bpe_tokenizer) -> Path:
    """A saved hfpipe model directory (model + tokenizer), as a recipe writes it."""
    path = tmp_path_factory.mktemp("hfpipe-model")
    tiny_model(bpe_tokenizer).save_pretrained(path)
    bpe_tokenizer.save_pretrained(path)
    return path
