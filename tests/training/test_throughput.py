"""flops_per_token: 6 N + 12 L T d, N counted from the model's own matrices for every architecture."""

import pytest
import torch

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.models.gpt import GPT_ARCHITECTURES
from hfpipe.training.throughput import flops_per_token


@pytest.mark.parametrize("architecture", sorted(GPT_ARCHITECTURES))
def test_flops_count_every_block_matrix_and_the_head(architecture):
    config = GPTConfig.from_preset("tiny", architecture, n_heads=8)
    model = GPTForCausalLM(config)
    matrices = sum(m.weight.numel() for m in model.model.blocks.modules() if isinstance(m, torch.nn.Linear))
    seq_len = 48
    expected = 6 * (matrices + model.lm_head.weight.numel()) + 12 * config.n_layers * seq_len * config.emb_dim
    assert flops_per_token(config, seq_len) == expected
