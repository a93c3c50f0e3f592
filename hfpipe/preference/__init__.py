"""Preference tuning and RLHF on trl: preference pairs, a reward model, DPO, and online RL (GRPO)."""

from .data import PreferenceDataArguments, load_pairs, normalize_pairs, split_pairs
from .dpo import DPOArguments, run_dpo
from .reward import RewardModelReward, evaluate_pairs, pairwise_metrics, run_reward_model
from .rl import RLArguments, run_rl

__all__ = [
    "DPOArguments",
    "PreferenceDataArguments",
    "RLArguments",
    "RewardModelReward",
    "evaluate_pairs",
    "load_pairs",
    "normalize_pairs",
    "pairwise_metrics",
    "run_dpo",
    "run_reward_model",
    "run_rl",
    "split_pairs",
]
