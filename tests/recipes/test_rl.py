"""recipes/rl.py (GRPO) end to end: the rewards see the completions, the mean reward is logged per step."""

import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "preference"))
from pref_fixtures import (  # noqa: E402, F401
    common_args,
    one_torch_thread,
    preference_records,
    save_start_model,
    tokenizer,
    write_json,
)

from hfpipe import GPTConfig, GPTForSequenceClassification  # noqa: E402
from hfpipe.cli import rl  # noqa: E402
from hfpipe.preference.rl import first_last, fit_prompts, run_rl  # noqa: E402
from hfpipe.recipe_args import parse_recipe_args  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("rl")
    tok = tokenizer()
    for labels in (1, 2):
        config = GPTConfig.from_preset("tiny", vocab_size=len(tok), context_length=128, emb_dim=32, n_heads=2,
                                       n_layers=2, num_labels=labels, pad_token_id=tok.pad_token_id)  # fmt: skip
        torch.manual_seed(0)
        GPTForSequenceClassification(config).save_pretrained(work / f"reward{labels}")
        tok.save_pretrained(work / f"reward{labels}")
    return save_start_model(work / "sft"), write_json(work / "pref.json", preference_records(40)), work


def args(setup, out, *extra):
    start, data, work = setup
    return [
        "--model_name_or_path", str(start), "--dataset_name", str(data), "--reward_model_path", str(work / "reward1"),
        "--reward_functions", "ends_with_eos", "length_within_bounds", "--length_max_tokens", "8",
        "--num_generations", "4", "--max_completion_length", "12", "--learning_rate", "1e-3", "--save_strategy", "no",
        *common_args(out, "--max_steps", "3", "--per_device_train_batch_size", "8", *extra),
    ]  # fmt: skip


class Recorder:
    """A reward function that keeps what trl hands it."""

    __name__ = "recorder"

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, completions, completion_ids, **kwargs):
        self.calls.append((prompts, completions, completion_ids))
        return [0.0] * len(completions)


def test_rl_rewards_see_the_completions_and_the_mean_reward_is_logged(setup, tmp_path, capsys):
    recorder = Recorder()
    parsed = parse_recipe_args(rl.ARGUMENTS, args(setup, tmp_path / "out"))
    script_args, model_args, data_args, rl_args, training_args = parsed
    result = run_rl(script_args, training_args, model_args, data_args, rl_args, extra_rewards=[recorder])
    trainer, tok = result.trainer, result.trainer.processing_class
    assert len(recorder.calls) == 3  # one generation batch per step
    prompts, completions, ids = recorder.calls[0]
    assert len(completions) == 8 and len(set(prompts)) == 2  # 2 prompts x 4 generations
    assert all(p.endswith("### Response:\n") for p in prompts)
    assert completions == [tok.decode(x, skip_special_tokens=True) for x in ids]
    assert all(1 <= len(x) <= 12 for x in ids)

    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert [h["step"] for h in logged] == [1, 2, 3] and result.curve == [
        (h["step"], h["reward"]) for h in logged
    ]
    names = ("reward_model", "ends_with_eos", "length_within_bounds", "recorder")
    for h in logged:  # the mean reward is the sum of the mean rewards of the functions
        assert h["reward"] == pytest.approx(sum(h[f"rewards/{n}/mean"] for n in names), abs=1e-4)
    eos_share = sum(x[-1] == tok.eos_token_id for x in ids) / len(ids)
    assert logged[0]["rewards/ends_with_eos/mean"] == pytest.approx(eos_share)
    assert result.metrics["reward_first_10pct"] == logged[0]["reward"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["stage"] == "rl" and results["metrics"]["reward_last_10pct"] == logged[-1]["reward"]


def test_rl_recipe_end_to_end(setup, tmp_path, capsys):
    result = rl.main(args(setup, tmp_path / "out", "--max_steps", "2"))
    assert len(result.curve) == 2 and (tmp_path / "out" / "model.safetensors").is_file()
    assert "mean reward over 2 logged steps" in capsys.readouterr().out


def test_prompt_over_the_context_is_cut_and_counted_or_refused(setup, tmp_path):
    tok = tokenizer()
    long = "Say " + "red " * 200 + "\n\n### Response:\n"
    fitted, n = fit_prompts(["Say red.\n", long], tok, context=128, max_completion_length=28)
    assert n == 1 and fitted[0] == "Say red.\n" and fitted[1].endswith("### Response:\n")
    assert len(tok(fitted[1], add_special_tokens=False)["input_ids"]) <= 100
    with pytest.raises(ValueError, match="exceeds the model's context"):
        fit_prompts([long], tok, context=128, max_completion_length=28, overflow="error")
    with pytest.raises(ValueError, match="leaves no room for a prompt"):
        fit_prompts(["x"], tok, context=128, max_completion_length=128)
    with pytest.raises(ValueError, match="max_completion_length .*exceeds"):
        rl.main(args(setup, tmp_path / "out", "--prompt_overflow", "error", "--max_completion_length", "120"))


def test_bad_rewards_are_clear_errors(setup, tmp_path):
    with pytest.raises(ValueError, match="score head with 2 labels"):
        rl.main(args(setup, tmp_path / "a", "--reward_model_path", str(setup[2] / "reward2")))
    with pytest.raises(ValueError, match="unknown; choose from ends_with_eos, length_within_bounds"):
        rl.main(args(setup, tmp_path / "b", "--reward_functions", "politeness"))
    with pytest.raises(ValueError, match="no reward"):
        rl.main([a for a in args(setup, tmp_path / "c") if a not in ("--reward_model_path", str(setup[2] / "reward1"),
                 "--reward_functions", "ends_with_eos", "length_within_bounds")])  # fmt: skip


def test_first_last():
    assert first_last([1.0] * 5 + [3.0] * 5) == (1.0, 3.0)  # 10 % of 10 = 1 value each
    assert first_last(list(range(40)), 0.1) == (1.5, 37.5)
    with pytest.raises(ValueError, match="no rewards"):
        first_last([])
