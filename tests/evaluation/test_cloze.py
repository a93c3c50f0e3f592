"""hfpipe_mc (hfpipe.evaluation.cloze): a model that only knows which words are common scores chance.

The unigram model is a real hfpipe ``GPTForCausalLM`` whose output is the corpus' token frequencies whatever the
context, scored by lm-eval through ``run_lm_eval`` exactly as the evaluate stage scores a checkpoint.
"""

import json
from collections import Counter

import pytest
import torch

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.data.stdlib_corpus import stdlib_corpus_path
from hfpipe.evaluation.cloze import TASK_FILE, WordStats, build_items, sentences
from hfpipe.evaluation.harness import run_lm_eval
from hfpipe.tokenization import train_bpe_tokenizer

ITEMS = [json.loads(line) for line in TASK_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    lines = stdlib_corpus_path().read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def unigram_model(tokenizer, documents: list[str]) -> GPTForCausalLM:
    """A GPT that ignores its input: every position's logits are the log frequencies of the corpus' tokens."""
    counts = Counter(t for ids in tokenizer(documents, add_special_tokens=False)["input_ids"] for t in ids)
    log_probs = torch.log(torch.tensor([counts[i] + 0.5 for i in range(len(tokenizer))], dtype=torch.float))
    config = GPTConfig(vocab_size=len(tokenizer), context_length=128, emb_dim=16, n_heads=2, n_layers=1,
                       drop_rate=0.0, tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    model = GPTForCausalLM(config).eval()
    with torch.no_grad():
        norm = (
            model.model.final_norm
        )  # scale 0: the final hidden state is its bias, the same at every position
        norm.weight.zero_()
        norm.bias.zero_()
        norm.bias[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, 0] = log_probs - log_probs.logsumexp(0)
    return model


def test_the_shipped_items_are_well_formed():
    assert len(ITEMS) >= 120
    for item in ITEMS:
        assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4
        assert all(c.endswith(".") and c[:-1].isalpha() for c in item["choices"])
        assert not item["question"].endswith((" ", "."))
    answers = Counter(item["answer"] for item in ITEMS)
    assert min(answers.values()) >= len(ITEMS) / 8  # the right choice is not always in the same place


def test_the_most_common_word_is_right_a_quarter_of_the_time(corpus):
    counts = WordStats(corpus).counts
    hits = sum(
        max(range(4), key=lambda i: counts[item["choices"][i][:-1]]) == item["answer"] for item in ITEMS
    )
    assert abs(hits / len(ITEMS) - 0.25) <= 0.10


def test_a_unigram_model_scores_chance_through_lm_eval(corpus):
    pytest.importorskip("lm_eval")
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=2048, min_frequency=2, model_max_length=128)
    metrics = run_lm_eval(unigram_model(tokenizer, corpus), tokenizer, ["hfpipe_mc"], batch_size=32)
    assert metrics["hfpipe_mc/chance"] == 0.25
    assert abs(metrics["hfpipe_mc/acc"] - 0.25) <= 0.10, metrics
    assert abs(metrics["hfpipe_mc/acc_norm"] - 0.25) <= 0.10, metrics


def test_items_come_from_held_out_sentences_with_distractors_of_the_same_kind(corpus):
    held_out = corpus[::50]
    items = build_items(held_out, corpus, n_items=24)
    assert items == build_items(held_out, corpus, n_items=24) and len(items) == 24  # deterministic
    stats = WordStats(corpus)
    held_sentences = {s for doc in held_out for s in sentences(doc)}
    ranks = []
    for item in items:
        answer = item["choices"][item["answer"]][:-1]
        previous = item["question"].split(" ")[-1]
        assert f"{item['question']} {answer}." in held_sentences
        others = [c[:-1] for i, c in enumerate(item["choices"]) if i != item["answer"]]
        assert all((previous, w) not in stats.pairs for w in others)  # never seen in this context
        assert all(stats.kind(w) == stats.kind(answer) and stats.final[w] >= 3 for w in others)
        ranks.append(sum(stats.counts[w] > stats.counts[answer] for w in others))
    assert ranks == [0, 1, 2, 3] * 6  # as often the most common word as the least common
