"""Tiny models and a byte-level BPE tokenizer, trained here, for the export tests."""

import pytest
import torch

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.tokenization import train_bpe_tokenizer

TEXT = (
    "The quick brown fox jumps over the lazy dog. A stitch in time saves nine. "
    "All that glitters is not gold. Actions speak louder than words. "
) * 40


@pytest.fixture(scope="session")
def bpe_tokenizer():
    return train_bpe_tokenizer([TEXT], vocab_size=320)


def tiny_causal_lm(tokenizer, seed: int = 0, train_steps: int = 30, **overrides) -> GPTForCausalLM:
    """A 2-layer GPT, briefly trained on TEXT so that its predictions (and perplexity) mean something."""
    torch.manual_seed(seed)
    kwargs = dict(
        vocab_size=len(tokenizer), context_length=64, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0
    )
    ids = {"bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = GPTForCausalLM(
        GPTConfig(**{**kwargs, **ids, "pad_token_id": tokenizer.pad_token_id, **overrides})
    )
    data = torch.tensor(tokenizer(TEXT)["input_ids"][: 8 * 64]).view(8, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(train_steps):
        loss = model(input_ids=data, labels=data).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, bpe_tokenizer):
    path = tmp_path_factory.mktemp("tiny") / "model"
    tiny_causal_lm(bpe_tokenizer).save_pretrained(path)
    bpe_tokenizer.save_pretrained(path)
    return path
