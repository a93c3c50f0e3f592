"""Online RL against a reward model and/or Python rewards (the RLHF step) with trl's ``GRPOTrainer``.

    result = run_rl(script_args, training_args, model_args, data_args, rl_args)   # GRPOConfig etc.

The policy samples ``num_generations`` completions per prompt; each is scored by the reward model of
``reward_model.py`` (``reward_model_path``) and/or by named Python rewards (``reward_functions``):

- ``ends_with_eos``: 1 when the completion ended with eos (the model stops), else 0;
- ``length_within_bounds``: 1 when the completion has ``length_min_tokens`` .. ``length_max_tokens`` tokens.

Prompts come from ``prompt`` (text or messages) or the book's ``instruction``/``input`` records (SFT's Alpaca
prompt), from the train split of the same 85/10/5 split as SFT. A prompt that does not fit the context once
``max_completion_length`` is counted is cut from the left (``prompt_overflow: truncate``, counted and
reported) or refused (``error``). trl logs the mean reward of every step (``reward``; ``logging_steps: 1``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from trl import GRPOTrainer

from hfpipe.data.instructions import format_alpaca_prompt, split_records
from hfpipe.data.sources import load_raw_dataset
from hfpipe.loading import model_context_length
from hfpipe.lora import build_lora_config
from hfpipe.training.run import finish_run, prepare_output_dir, train_and_evaluate, without_dataset_bars

from .common import final_model, load_preference_start
from .reward import RewardModelReward

logger = logging.getLogger(__name__)
REWARD_FUNCTIONS = ("ends_with_eos", "length_within_bounds")
OVERFLOW = ("truncate", "error")


@dataclass
class RLArguments:
    """hfpipe's RL settings: the rewards, and what to do with prompts too long for the context."""

    reward_model_path: str | None = field(
        default=None,
        metadata={"help": "a reward model saved by recipes/reward_model.py (one-label classifier)"},
    )
    reward_functions: list[str] = field(
        default_factory=list, metadata={"help": f"Python rewards, any of {', '.join(REWARD_FUNCTIONS)}"}
    )
    length_min_tokens: int = field(
        default=4, metadata={"help": "length_within_bounds: fewest completion tokens"}
    )
    length_max_tokens: int = field(
        default=64, metadata={"help": "length_within_bounds: most completion tokens"}
    )
    prompt_overflow: str = field(
        default="truncate",
        metadata={"help": "prompt + max_completion_length over the context: truncate | error"},
    )

    def __post_init__(self):
        if isinstance(self.reward_functions, str):
            self.reward_functions = [self.reward_functions]
        unknown = [f for f in self.reward_functions if f not in REWARD_FUNCTIONS]
        if unknown:
            raise ValueError(
                f"reward_functions {unknown} are unknown; choose from {', '.join(REWARD_FUNCTIONS)}"
            )
        if self.prompt_overflow not in OVERFLOW:
            raise ValueError(f"prompt_overflow must be one of {OVERFLOW}, got {self.prompt_overflow!r}")
        if not 0 <= self.length_min_tokens <= self.length_max_tokens:
            raise ValueError(
                f"length_min_tokens ({self.length_min_tokens}) must be at most length_max_tokens ({self.length_max_tokens})"
            )


def ends_with_eos_reward(eos_token_id: int):
    """Reward 1.0 for a completion that ended with eos, else 0.0."""

    def ends_with_eos(completions, completion_ids, **kwargs) -> list[float]:
        return [1.0 if ids and ids[-1] == eos_token_id else 0.0 for ids in completion_ids]

    return ends_with_eos


def length_within_bounds_reward(low: int, high: int, eos_token_id: int):
    """Reward 1.0 for a completion of ``low`` .. ``high`` tokens (eos not counted), else 0.0."""

    def length_within_bounds(completions, completion_ids, **kwargs) -> list[float]:
        lengths = [len(ids) - (1 if ids and ids[-1] == eos_token_id else 0) for ids in completion_ids]
        return [1.0 if low <= n <= high else 0.0 for n in lengths]

    return length_within_bounds


def build_rewards(rl_args: RLArguments, tokenizer) -> list:
    """The reward callables trl calls: the reward model (if any) first, then the named Python rewards."""
    rewards = (
        [RewardModelReward.from_pretrained(rl_args.reward_model_path)] if rl_args.reward_model_path else []
    )
    eos = tokenizer.eos_token_id
    for name in rl_args.reward_functions:
        if name == "ends_with_eos":
            rewards.append(ends_with_eos_reward(eos))
        else:
            rewards.append(
                length_within_bounds_reward(rl_args.length_min_tokens, rl_args.length_max_tokens, eos)
            )
    return rewards


def load_prompts(
    dataset_name: str, dataset_config: str | None = None, split: str = "train"
) -> tuple[list, str]:
    """Prompts from ``prompt`` (text or messages) or the book's ``instruction``/``input``; returns (prompts, format)."""
    if not dataset_name:
        raise ValueError("no dataset given: set dataset_name to a .json/.jsonl file with prompts")
    ds = load_raw_dataset(dataset_name, split=split, config_name=dataset_config)
    if "prompt" in ds.column_names:
        prompts, fmt = list(ds["prompt"]), "prompts"
    elif "instruction" in ds.column_names:
        prompts = [
            format_alpaca_prompt(r)
            for r in ds
            if isinstance(r["instruction"], str) and r["instruction"].strip()
        ]
        fmt = "alpaca"
    else:
        raise ValueError(
            f"{dataset_name}: RL needs a prompt column (text or messages), or the book's instruction (+ input); "
            f"it has {ds.column_names}"
        )
    prompts = [p for p in prompts if p]
    if not prompts:
        raise ValueError(f"{dataset_name}: no non-empty prompt")
    return prompts, fmt


def _prompt_length(prompt, tokenizer) -> int:
    if isinstance(prompt, list):
        return len(
            tokenizer.apply_chat_template(
                prompt, add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )
    return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def fit_prompts(
    prompts: list, tokenizer, context: int, max_completion_length: int, overflow: str = "truncate"
):
    """Prompts that fit ``context - max_completion_length`` tokens; returns (prompts, number truncated).

    Text prompts keep their end (the response header the model answers after); messages cannot be cut: error.
    """
    budget = context - max_completion_length
    if budget < 1:
        raise ValueError(
            f"max_completion_length ({max_completion_length}) leaves no room for a prompt in the model's context "
            f"({context} tokens); lower max_completion_length"
        )
    fitted, truncated = [], 0
    for prompt in prompts:
        n = _prompt_length(prompt, tokenizer)
        if n <= budget:
            fitted.append(prompt)
            continue
        if overflow == "error" or isinstance(prompt, list):
            raise ValueError(
                f"a prompt of {n} tokens plus max_completion_length {max_completion_length} exceeds the model's "
                f"context ({context}); lower max_completion_length, shorten the prompts"
                + (", or set prompt_overflow: truncate" if not isinstance(prompt, list) else "")
            )
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        keep = budget
        while True:  # decoding and re-encoding can merge differently: cut until it fits
            text = tokenizer.decode(ids[-keep:])
            if _prompt_length(text, tokenizer) <= budget:
                break
            keep -= 1
        fitted.append(text)
        truncated += 1
    if truncated:
        logger.warning(
            "%d of %d prompts are longer than context %d - max_completion_length %d = %d tokens: cut from the left",
            truncated, len(prompts), context, max_completion_length, budget,
        )  # fmt: skip
    return fitted, truncated


def reward_curve(trainer) -> list[tuple[int, float]]:
    """``(step, mean reward)`` of every logged training step."""
    return [(h["step"], h["reward"]) for h in trainer.state.log_history if "reward" in h and "loss" in h]


def first_last(values: list[float], share: float = 0.1) -> tuple[float, float]:
    """Mean of the first and of the last ``share`` of ``values`` (at least one value each)."""
    if not values:
        raise ValueError("no rewards were logged; set logging_steps")
    k = max(1, round(len(values) * share))
    return sum(values[:k]) / k, sum(values[-k:]) / k


@dataclass
class RLResult:
    """What an RL run produced: the trainer, the reward curve and the metrics."""

    trainer: GRPOTrainer
    metrics: dict = field(default_factory=dict)
    curve: list = field(default_factory=list)
    output_dir: Path | None = None


def run_rl(script_args, training_args, model_args, data_args, rl_args, extra_rewards=()) -> RLResult:
    """GRPO on the prompts of ``script_args.dataset_name``; see the module docstring.

    ``extra_rewards``: more reward callables (trl's signature), after the configured ones.
    """
    if not (rl_args.reward_model_path or rl_args.reward_functions or extra_rewards):
        raise ValueError(
            f"no reward: set reward_model_path (a recipes/reward_model.py output) and/or reward_functions "
            f"({', '.join(REWARD_FUNCTIONS)})"
        )
    prompts, fmt = load_prompts(
        script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split
    )
    model, tokenizer = load_preference_start(model_args, "causal-lm", fmt if fmt == "alpaca" else "text")
    rewards = build_rewards(rl_args, tokenizer) + list(extra_rewards)
    context = model_context_length(model.config) or tokenizer.model_max_length
    train = split_records(prompts, data_args.test_size, data_args.validation_size, data_args.split_seed)[
        "train"
    ]
    train, truncated = fit_prompts(
        train, tokenizer, context, training_args.max_completion_length, rl_args.prompt_overflow
    )
    logger.info("%d training prompts (%s), %d truncated to fit the context", len(train), fmt, truncated)
    prepare_output_dir(training_args)
    trainer = without_dataset_bars(GRPOTrainer)(
        model=model,
        reward_funcs=rewards,
        args=training_args,
        train_dataset=Dataset.from_dict({"prompt": train}),
        processing_class=tokenizer,
        peft_config=build_lora_config(model_args, "CAUSAL_LM", model) if model_args.use_peft else None,
    )
    metrics = train_and_evaluate(trainer)
    curve = reward_curve(trainer)
    if curve:
        metrics["reward_first_10pct"], metrics["reward_last_10pct"] = first_last([r for _, r in curve])
    metrics["truncated_prompts"] = truncated

    out = finish_run(trainer, tokenizer, "rl", metrics, model=final_model(trainer.model, model_args.model_name_or_path),
                     reward_curve=curve, card={"dataset": script_args.dataset_name})  # fmt: skip
    return RLResult(trainer, metrics, curve, out)


__all__ = [
    "REWARD_FUNCTIONS",
    "RLArguments",
    "RLResult",
    "build_rewards",
    "ends_with_eos_reward",
    "fit_prompts",
    "first_last",
    "length_within_bounds_reward",
    "load_prompts",
    "reward_curve",
    "run_rl",
]
