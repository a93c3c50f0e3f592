"""hfpipe.evaluation.answers: batched, cached greedy answers equal one-prompt-at-a-time greedy decoding."""

import logging

import torch

from hfpipe.evaluation.answers import generate_answers

PROMPTS = ["The", "Return the value of the", "A model is", "Open the file and read it", "x", "Data are"]


def records(tokenizer) -> list[dict]:
    return [{"prompt": p, "completion": "", "instruction": p} for p in PROMPTS]


def plain_greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Greedy decoding the long way: the whole sequence through the model for every token, no cache."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new = []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            token = int(model(torch.tensor([ids + new]), use_cache=False).logits[0, -1].argmax())
        if token == tokenizer.eos_token_id:
            break
        new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True).strip()


def test_batched_answers_equal_unbatched_greedy(make_model, bpe_tokenizer):
    model = make_model(bpe_tokenizer)
    batched = generate_answers(model, bpe_tokenizer, records(bpe_tokenizer), max_new_tokens=12, batch_size=4)
    expected = [plain_greedy(model, bpe_tokenizer, p, 12) for p in PROMPTS]
    assert [a["response"] for a in batched] == expected
    assert [a["instruction"] for a in batched] == PROMPTS  # the records' order, not the batches'
    assert any(len(a["response"]) > 5 for a in batched)


def test_the_log_says_how_many_prompts_and_about_how_long(make_model, bpe_tokenizer, caplog):
    with caplog.at_level(logging.INFO, logger="hfpipe.evaluation.answers"):
        generate_answers(make_model(bpe_tokenizer), bpe_tokenizer, records(bpe_tokenizer), 4, batch_size=2)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "test answers: 6 prompts, 2 at a time, up to 4 new tokens each"
    assert lines[1].startswith("test answers: the first batch took ") and "for the 6 prompts" in lines[1]
