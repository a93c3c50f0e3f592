"""generate() on GPTForCausalLM: KV cache, left padding, sampling controls, eos, context-length limits."""

import logging

import pytest
import torch

# Cached against uncached decoding and left padding: tests/test_drift.py (run on the newest and oldest releases).


def _scores_and_logits(model, prompt, **kwargs):
    out = model.generate(
        prompt, do_sample=True, max_new_tokens=4, eos_token_id=None, output_scores=True, output_logits=True,
        return_dict_in_generate=True, **kwargs,
    )  # fmt: skip
    return out, torch.stack(out.scores, 1), torch.stack(out.logits, 1)


def test_temperature_scales_logits(tiny_model, tiny_config):
    prompt = torch.randint(2, tiny_config.vocab_size, (1, 5))
    _, scores, logits = _scores_and_logits(tiny_model, prompt, temperature=0.5, top_k=0, top_p=1.0)
    torch.testing.assert_close(scores, logits / 0.5)
    # a very low temperature samples the greedy tokens
    cold = tiny_model.generate(
        prompt, do_sample=True, temperature=1e-4, top_k=0, max_new_tokens=8, eos_token_id=None
    )
    greedy = tiny_model.generate(prompt, do_sample=False, max_new_tokens=8, eos_token_id=None)
    assert torch.equal(cold, greedy)


def test_top_k_keeps_k_candidates(tiny_model, tiny_config):
    torch.manual_seed(1)
    prompt = torch.randint(2, tiny_config.vocab_size, (2, 5))
    out, scores, logits = _scores_and_logits(tiny_model, prompt, top_k=5, top_p=1.0, temperature=1.0)
    finite = torch.isfinite(scores)
    assert torch.all(finite.sum(-1) == 5)
    assert torch.equal(finite, logits >= logits.topk(5, dim=-1).values[..., -1:])  # the 5 most likely tokens
    chosen = out.sequences[:, 5:]
    assert torch.all(finite.gather(-1, chosen.unsqueeze(-1)))


def test_top_p_keeps_smallest_nucleus(tiny_model, tiny_config):
    torch.manual_seed(2)
    prompt = torch.randint(2, tiny_config.vocab_size, (1, 5))
    with torch.no_grad():  # sharpen the random model's flat distribution so the nucleus is small
        tiny_model.lm_head.weight.mul_(40)
    out, scores, logits = _scores_and_logits(tiny_model, prompt, top_p=0.6, top_k=0, temperature=1.0)
    probs = logits.softmax(-1)
    for step in range(scores.shape[1]):
        kept = torch.isfinite(scores[0, step])
        sorted_probs = probs[0, step].sort(descending=True).values
        n_expected = int((sorted_probs.cumsum(0) < 0.6).sum()) + 1  # smallest set with mass >= 0.6
        assert 1 <= kept.sum() < tiny_config.vocab_size
        assert kept.sum() == n_expected
        assert probs[0, step][kept].min() >= probs[0, step][~kept].max()
        assert kept[out.sequences[0, 5 + step]]


def test_stops_at_eos(tiny_model, tiny_config, tokenizer):
    prompt = torch.randint(2, tiny_config.vocab_size, (1, 5))
    free = tiny_model.generate(prompt, do_sample=False, max_new_tokens=10, eos_token_id=None)
    new = free[0, 5:].tolist()
    eos = new[3]
    stop = new.index(eos)  # first occurrence
    stopped = tiny_model.generate(
        prompt, do_sample=False, max_new_tokens=10, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id
    )
    assert stopped[0, 5:].tolist() == new[: stop + 1]
    # from the config too: generate() reads eos_token_id from the model's generation config
    tiny_model.generation_config.eos_token_id = eos
    assert tiny_model.generate(prompt, do_sample=False, max_new_tokens=10).shape[1] == 5 + stop + 1


def test_prompt_longer_than_context_raises(tiny_model, tiny_config):
    prompt = torch.randint(2, tiny_config.vocab_size, (1, tiny_config.context_length + 1))
    with pytest.raises(ValueError, match="prompt of 65 tokens is longer than context_length \\(64\\)"):
        tiny_model.generate(prompt, max_new_tokens=1)


@pytest.mark.parametrize("length_kwarg", ["max_new_tokens", "max_length"])
def test_generation_past_context_is_truncated_with_warning(tiny_model, tiny_config, caplog, length_kwarg):
    prompt = torch.randint(2, tiny_config.vocab_size, (1, 60))
    length = {"max_new_tokens": 10, "max_length": 70}[length_kwarg]
    with caplog.at_level(logging.WARNING):
        out = tiny_model.generate(prompt, do_sample=False, eos_token_id=None, **{length_kwarg: length})
    assert out.shape == (1, tiny_config.context_length)
    assert "generation truncated: 60 prompt + 10 new tokens exceed context_length 64" in caplog.text
    greedy = tiny_model.generate(prompt, do_sample=False, eos_token_id=None, max_new_tokens=4)
    assert torch.equal(out, greedy)


def test_generation_without_length_stays_within_context(tiny_model, tiny_config):
    prompt = torch.randint(2, tiny_config.vocab_size, (1, 60))
    out = tiny_model.generate(prompt, do_sample=False, eos_token_id=None)
    assert 60 < out.shape[1] <= tiny_config.context_length
