"""Sliding-window perplexity and bits per byte against hand computations on tiny models."""

import math

import pytest
import torch

from hfpipe.evaluation.perplexity import evaluate_perplexity, sliding_windows


def token_logprob(model, context: list[int], token: int) -> float:
    """log p(token | context) from one forward pass over exactly ``context``."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([context])).logits[0, -1]
    return torch.log_softmax(logits.double(), -1)[token].item()


def hand_nll(model, tokenizer, text: str, max_length: int, stride: int) -> float:
    """NLL by the documented rule: the first ``max_length`` tokens see everything before them (from bos);
    later tokens come in chunks of ``max_length - stride``, each chunk's window ending at its last token, so
    every one of them keeps at least ``stride`` tokens of context."""
    step = max_length - stride
    ids = [tokenizer.eos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    n = len(ids) - 1
    nll = 0.0
    for t in range(1, n + 1):
        if t <= max_length:
            start = 0
        else:
            # the last token of t's chunk
            chunk_end = min(max_length + step * math.ceil((t - max_length) / step), n)
            start = chunk_end - max_length
        nll -= token_logprob(model, ids[start:t], ids[t])
    return nll


@pytest.mark.parametrize(
    "n,length,stride", [(1, 4, 4), (10, 4, 2), (10, 4, 4), (11, 4, 3), (64, 16, 1), (5, 8, 3)]
)
def test_windows_score_every_token_once_with_enough_context(n, length, stride):
    scored = []
    for start, end, n_scored in sliding_windows(n, length, stride):
        assert end - start <= length
        targets = range(end + 1 - n_scored, end + 1)  # ids predicted and scored by this window
        scored += targets
        if targets[0] > length:  # after the first window
            assert targets[0] - start >= length - stride + 1  # context, bos included (stride = step here)
    assert scored == list(range(1, n + 1))


def test_short_text_equals_hand_computation(bpe_tokenizer, make_model, paragraphs):
    model = make_model(bpe_tokenizer)
    text = paragraphs[0][:60]
    result = evaluate_perplexity(model, bpe_tokenizer, [text], progress=False)
    n_tokens = len(bpe_tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n_tokens < 64  # one window
    expected = hand_nll(model, bpe_tokenizer, text, 64, 32)
    assert result.tokens == n_tokens and result.bytes == len(text.encode("utf-8"))
    assert result.nll == pytest.approx(expected, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(expected / n_tokens), rel=1e-5)
    assert result.bits_per_byte == pytest.approx(expected / math.log(2) / result.bytes, rel=1e-5)


@pytest.mark.parametrize("stride", [11, 0])
def test_sliding_window_equals_hand_computation(bpe_tokenizer, make_model, paragraphs, stride):
    model = make_model(bpe_tokenizer, context_length=16)
    text = paragraphs[1][:200]
    result = evaluate_perplexity(model, bpe_tokenizer, [text], stride=stride, batch_size=3, progress=False)
    assert result.tokens > 40  # several windows
    assert result.nll == pytest.approx(hand_nll(model, bpe_tokenizer, text, 16, stride), rel=1e-5)


def test_more_context_changes_the_figure_and_batching_does_not(bpe_tokenizer, make_model, paragraphs):
    model = make_model(bpe_tokenizer, context_length=16)
    disjoint = evaluate_perplexity(model, bpe_tokenizer, paragraphs, stride=0, batch_size=1, progress=False)
    batched = evaluate_perplexity(model, bpe_tokenizer, paragraphs, stride=0, batch_size=7, progress=False)
    overlapping = evaluate_perplexity(model, bpe_tokenizer, paragraphs, stride=12, progress=False)
    assert batched.nll == pytest.approx(disjoint.nll, rel=1e-5)
    assert overlapping.tokens == disjoint.tokens and overlapping.nll != pytest.approx(disjoint.nll, rel=1e-4)


def test_char_and_bpe_models_compare_per_byte(bpe_tokenizer, char_tokenizer, make_model, paragraphs):
    """Same text, same bytes, different token counts: bits per byte puts both on one scale.

    An untrained model is close to uniform, so its bits per byte is about log2(vocab) * tokens / bytes."""
    results = {}
    for name, tok in (("char", char_tokenizer), ("bpe", bpe_tokenizer)):
        model = make_model(tok)
        model.lm_head.weight.data.zero_()  # exactly uniform predictions
        results[name] = evaluate_perplexity(model, tok, paragraphs, progress=False)
        r = results[name]
        assert r.bits_per_byte == pytest.approx(math.log2(len(tok)) * r.tokens / r.bytes, rel=1e-5)
    assert results["char"].bytes == results["bpe"].bytes == sum(len(p.encode("utf-8")) for p in paragraphs)
    # ASCII text: 1 char = 1 byte; per-token perplexity is not comparable across tokenizers, bits per byte is
    assert results["char"].tokens == results["char"].bytes > results["bpe"].tokens
    assert results["char"].perplexity < results["bpe"].perplexity


def test_empty_dataset_is_an_error_and_short_texts_are_skipped(bpe_tokenizer, make_model, paragraphs):
    model = make_model(bpe_tokenizer)
    with pytest.raises(ValueError, match="empty"):
        evaluate_perplexity(model, bpe_tokenizer, [], progress=False)
    with pytest.raises(ValueError, match="shorter than one token"):
        evaluate_perplexity(model, bpe_tokenizer, ["", ""], progress=False)
    result = evaluate_perplexity(model, bpe_tokenizer, ["", paragraphs[0], ""], progress=False)
    assert result.skipped_documents == 2 and result.documents == 1
    assert result.metrics()["skipped_documents"] == 2


def test_bad_stride_is_an_error(bpe_tokenizer, make_model, paragraphs):
    with pytest.raises(ValueError, match="stride"):
        evaluate_perplexity(make_model(bpe_tokenizer), bpe_tokenizer, paragraphs, stride=64, progress=False)
