"""The reward model's new score head follows ``seed`` alone, not whatever used the random generator before."""

import torch
from pref_fixtures import common_args, preference_records, save_start_model, write_json

from hfpipe.cli import reward_model


def test_score_head_follows_seed_not_earlier_random_use(tmp_path):
    start, data = (
        save_start_model(tmp_path / "sft"),
        write_json(tmp_path / "pref.json", preference_records(40)),
    )

    def margin_before(name: str, seed: str, earlier_draws: int) -> float:
        torch.rand(earlier_draws)  # other code ran first (a benchmark converting a model, a pipeline stage)
        args = ["--model_name_or_path", str(start), "--dataset_name", str(data), "--save_strategy", "no"]
        result = reward_model.main(args + common_args(tmp_path / name, "--max_steps", "1", "--seed", seed))
        return result.metrics["test_margin_before"]  # the untrained head's held-out margin

    first = margin_before("a", "123", 1)
    assert margin_before("b", "123", 1000) == first
    assert margin_before("c", "7", 1) != first
