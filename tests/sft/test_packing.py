"""Packing: a padding-free packed batch gives each example exactly the logits it gets alone, or is refused."""

import sys
from pathlib import Path

import pytest
import torch
from transformers import OPTConfig, OPTForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.models.gpt import GPT_ARCHITECTURES
from hfpipe.sft.packing import check_packing

sys.path.insert(0, str(Path(__file__).parent))
from sft_fixtures import tiny_gpt_config  # noqa: E402

SIZES = ("vocab_size", "context_length", "emb_dim", "n_layers", "drop_rate")


@pytest.mark.parametrize("architecture", sorted(GPT_ARCHITECTURES))
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_batch_matches_each_example_alone(attn, architecture):
    """With rope, positions restart per packed example (position_ids) as learned positions do."""
    torch.manual_seed(0)
    config = tiny_gpt_config(100)
    config = GPTConfig.from_preset("tiny", architecture, **{k: getattr(config, k) for k in SIZES}, n_heads=4)
    model = GPTForCausalLM(config).eval()
    model.config._attn_implementation = attn
    lengths = [7, 3, 11, 5]
    examples = [{"input_ids": torch.randint(0, 100, (n,)).tolist()} for n in lengths]
    for e in examples:  # SFT labels: the prompt half masked
        e["labels"] = [-100] * (len(e["input_ids"]) // 2) + e["input_ids"][len(e["input_ids"]) // 2 :]
    packed = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)
    padded = DataCollatorForLanguageModeling(pad_token_id=0)(examples)
    with torch.no_grad():
        out = model(**packed, use_cache=False)  # as SFTTrainer calls it: no cache
        logits = out.logits[0].split(lengths)
        for e, got in zip(examples, logits):
            alone = model(input_ids=torch.tensor([e["input_ids"]]), use_cache=False).logits[0]
            torch.testing.assert_close(got, alone, atol=1e-5, rtol=1e-5)
        # the loss over the trained tokens is the same packed or padded: no target crosses an example boundary
        torch.testing.assert_close(out.loss, model(**padded, use_cache=False).loss, atol=1e-5, rtol=1e-5)
    check_packing(model)  # the recipe's own probe agrees


def test_packing_refused_for_a_model_whose_attention_crosses_examples():
    # OPT derives positions from the attention mask, which padding-free batches do not have
    opt = OPTForCausalLM(
        OPTConfig(vocab_size=100, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
                  max_position_embeddings=64, word_embed_proj_dim=32)
    )  # fmt: skip
    with pytest.raises(
        ValueError, match="packing: true is refused.*attend to each other.*set packing: false"
    ):
        check_packing(opt)
