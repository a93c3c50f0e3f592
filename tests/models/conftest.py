"""Fixtures for the GPT model tests: tiny configs and models, and a tokenizer built offline."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.models.gpt import GPT_ARCHITECTURES

SENTENCES = [
    "I had always thought Jack Gisburn rather a cheap genius.",
    "The quick brown fox jumps over the lazy dog.",
    "First Citizen: Before we proceed any further, hear me speak.",
    "All: Speak, speak. You are all resolved rather to die than to famish?",
    "It was no great surprise to me to hear that, in the height of his glory, he had dropped his painting.",
]


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (< 512 ids) with distinct ``<pad>`` and ``<|endoftext|>`` tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<pad>")
    assert fast.pad_token_id != fast.eos_token_id and len(fast) <= 512
    return fast


@pytest.fixture(params=sorted(GPT_ARCHITECTURES))
def tiny_config(request, tokenizer) -> GPTConfig:
    """The ``tiny`` preset (vocab 512, context 64, 64 wide, 2 layers, 4 heads, no dropout), tokenizer's ids, in
    each architecture (book, llama, nanochat): every test using it runs for each."""
    return GPTConfig.from_preset(
        "tiny",
        request.param,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        pad_token_id=tokenizer.pad_token_id,
    )


@pytest.fixture
def tiny_model(tiny_config) -> GPTForCausalLM:
    torch.manual_seed(0)
    return GPTForCausalLM(tiny_config).eval()
