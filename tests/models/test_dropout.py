"""Dropout, attention's included, is on in training and off once trl's ``disable_dropout`` has run (as in GPT-2).

trl's DPO, reward and GRPO trainers turn dropout off by setting ``p = 0`` on every ``nn.Dropout``; an attention
dropout kept as a plain float would stay on and make the policy's log-probs noisy against the reference's.
"""

import pytest
import torch
from trl.trainer.utils import disable_dropout_in_model

from hfpipe import GPTConfig, GPTForCausalLM


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_disable_dropout_reaches_attention(attn):
    torch.manual_seed(0)
    config = GPTConfig.from_preset(
        "tiny", vocab_size=64, context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.5
    )
    config._attn_implementation = attn
    model = GPTForCausalLM(config).train()
    ids = torch.randint(0, 64, (2, 12))
    assert not torch.equal(model(ids).logits, model(ids).logits)  # dropout is on in training

    disable_dropout_in_model(model)
    # only attention dropout is left to switch off here: resid/ff/embedding dropouts are nn.Dropout already
    assert torch.equal(model(ids).logits, model(ids).logits)
    assert torch.allclose(model(ids).logits, model.eval()(ids).logits, atol=1e-6)
