"""hfpipe.preference.reward: pairwise accuracy on a hand-made set, and reward heads that cannot be a reward."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from pref_fixtures import tokenizer as make_tokenizer  # noqa: E402

from hfpipe import GPTConfig, GPTForSequenceClassification  # noqa: E402
from hfpipe.preference.reward import (  # noqa: E402
    RewardModelReward,
    check_reward_head,
    evaluate_pairs,
    pair_texts,
    pairwise_metrics,
    score_texts,
)


def classifier(tok, num_labels=1, seed=0):
    config = GPTConfig.from_preset(
        "tiny", vocab_size=len(tok), context_length=64, emb_dim=32, n_heads=2, n_layers=2, num_labels=num_labels,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    return GPTForSequenceClassification(config).eval()


def test_pairwise_metrics_by_hand():
    m = pairwise_metrics([1.0, 2.0, 3.0, 0.5], [0.0, 3.0, 1.0, 0.5])  # right, wrong, right, tie (= wrong)
    assert m == {"accuracy": 0.5, "margin": pytest.approx((1 - 1 + 2 + 0) / 4)}
    with pytest.raises(ValueError, match="as many"):
        pairwise_metrics([1.0], [])


def test_evaluate_pairs_matches_scoring_each_text_alone():
    tok = make_tokenizer()
    model = classifier(tok)
    pairs = [
        {"prompt": "Say red.\n", "chosen": "It is red. Thank you.", "rejected": "It is red. Go away, fool."},
        {"prompt": "Say blue.\n", "chosen": "blue", "rejected": "It is blue. Go away."},
        {"chosen": "Thank you.", "rejected": "fool"},
    ]
    assert pair_texts(pairs[0], tok) == (
        "Say red.\nIt is red. Thank you." + tok.eos_token,
        "Say red.\nIt is red. Go away, fool." + tok.eos_token,
    )

    def alone(text):  # no padding, no batching
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return model(input_ids=ids).logits[0, 0].item()

    right = [alone(c) > alone(r) for c, r in (pair_texts(p, tok) for p in pairs)]
    margins = [alone(c) - alone(r) for c, r in (pair_texts(p, tok) for p in pairs)]
    got = evaluate_pairs(model, tok, pairs, batch_size=2)  # batches mix lengths: padding must not matter
    assert got["accuracy"] == pytest.approx(sum(right) / 3)
    assert got["margin"] == pytest.approx(sum(margins) / 3, abs=1e-5)


def test_multi_label_head_is_not_a_reward(tmp_path):
    tok = make_tokenizer()
    two = classifier(tok, num_labels=2)
    with pytest.raises(ValueError, match="score head with 2 labels"):
        RewardModelReward(two, tok)
    two.save_pretrained(tmp_path / "two")
    tok.save_pretrained(tmp_path / "two")
    with pytest.raises(ValueError, match="score head with 2 labels"):
        check_reward_head(str(tmp_path / "two"))
    with pytest.raises(ValueError, match="score head with 2 labels"):
        RewardModelReward.from_pretrained(str(tmp_path / "two"))


def test_reward_without_pad_token_is_a_clear_error():
    tok = make_tokenizer()
    tok.pad_token = None
    with pytest.raises(ValueError, match="no pad token"):
        RewardModelReward(classifier(make_tokenizer()), tok)


def test_reward_model_reward_scores_prompt_plus_completion_with_eos_if_it_ended():
    tok = make_tokenizer()
    model = classifier(tok)
    scorer = RewardModelReward(model, tok)
    ended = tok("It is red.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    got = scorer(
        prompts=["Say red.\n", "Say red.\n"], completions=["It is red.", "xy"], completion_ids=[ended, [5, 6]]
    )
    expected = score_texts(model, tok, ["Say red.\nIt is red." + tok.eos_token, "Say red.\nxy"])
    assert got == pytest.approx(expected, abs=1e-6)
