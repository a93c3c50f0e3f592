"""The reward model: a one-label sequence classifier trained on preference pairs with trl's ``RewardTrainer``.

    result = run_reward_model(script_args, training_args, model_args, data_args)   # RewardConfig etc.
    scorer = RewardModelReward.from_pretrained("outputs/reward")                   # a reward for rl.py

It starts from a causal checkpoint (an hfpipe pretraining or SFT output, GPT-2, any causal LM) with a new
``score`` head, reports held-out pairwise accuracy (score of chosen > score of rejected) and the mean margin
before and after training, and saves a plain classifier (LoRA merged) that scores text with
``pipeline("text-classification")`` and ``AutoModelForSequenceClassification``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig
from trl import RewardTrainer

from hfpipe.loading import is_adapter, load_model, load_tokenizer, model_context_length, read_config
from hfpipe.lora import apply_lora, merge_lora
from hfpipe.training.run import finish_run, prepare_output_dir, train_and_evaluate, without_dataset_bars

from .common import cap_max_length, load_preference_start
from .data import load_split_pairs, to_dataset

logger = logging.getLogger(__name__)
REWARD_LABEL = "reward"


def check_reward_head(name_or_path: str) -> None:
    """Refuse a checkpoint whose classification head has more than one label: a reward is one number."""
    if is_adapter(str(name_or_path)):
        return
    archs = read_config(str(name_or_path)).get("architectures") or []
    # AutoConfig: transformers 5 leaves the default labels (two) out of config.json
    labels = AutoConfig.from_pretrained(str(name_or_path), trust_remote_code=False).id2label
    n = len(labels)
    if any(a.endswith("ForSequenceClassification") for a in archs) and n != 1:
        raise ValueError(
            f"{name_or_path} has a score head with {n} labels ({list(labels.values())}); "
            "a reward model gives one number per text: train one with recipes/reward_model.py (one label), or "
            "start from a causal checkpoint"
        )


def pair_texts(pair: dict, tokenizer) -> tuple[str, str]:
    """The chosen and rejected texts a reward model scores, rendered as trl's RewardTrainer renders them."""
    prompt = pair.get("prompt", [] if isinstance(pair["chosen"], list) else "")
    if isinstance(pair["chosen"], list):
        render = lambda m: tokenizer.apply_chat_template(prompt + m, tokenize=False)  # noqa: E731
        return render(pair["chosen"]), render(pair["rejected"])
    eos = tokenizer.eos_token
    return tuple(
        t if t.endswith(eos) else t + eos for t in (prompt + pair["chosen"], prompt + pair["rejected"])
    )


@torch.no_grad()
def score_texts(model, tokenizer, texts: list[str], batch_size: int = 16) -> list[float]:
    """The reward of each text: the score head's one logit at its last token (over-long texts keep their end)."""
    context = model_context_length(model.config) or tokenizer.model_max_length
    was_training = model.training
    model.eval()
    scores = []
    for i in range(0, len(texts), batch_size):
        ids = tokenizer(texts[i : i + batch_size], add_special_tokens=False)["input_ids"]
        ids = [x[-context:] for x in ids]
        batch = tokenizer.pad({"input_ids": ids}, padding=True, padding_side="right", return_tensors="pt")
        batch = {k: v.to(model.device) for k, v in batch.items()}
        scores += model(**batch).logits[:, 0].float().tolist()
    model.train(was_training)
    return scores


def pairwise_metrics(chosen: list[float], rejected: list[float]) -> dict[str, float]:
    """``accuracy``: share of pairs scored chosen > rejected (a tie is wrong); ``margin``: mean chosen - rejected."""
    if len(chosen) != len(rejected) or not chosen:
        raise ValueError(
            f"need as many chosen as rejected scores, and some: got {len(chosen)} and {len(rejected)}"
        )
    diffs = [c - r for c, r in zip(chosen, rejected)]
    return {"accuracy": sum(d > 0 for d in diffs) / len(diffs), "margin": sum(diffs) / len(diffs)}


def evaluate_pairs(model, tokenizer, pairs: list[dict], batch_size: int = 16) -> dict[str, float]:
    """Pairwise accuracy and mean margin of a reward model on held-out ``pairs``."""
    texts = [pair_texts(p, tokenizer) for p in pairs]
    chosen = score_texts(model, tokenizer, [c for c, _ in texts], batch_size)
    rejected = score_texts(model, tokenizer, [r for _, r in texts], batch_size)
    return pairwise_metrics(chosen, rejected)


@dataclass
class RewardResult:
    """What a reward-model run produced."""

    trainer: RewardTrainer
    metrics: dict = field(default_factory=dict)
    output_dir: Path | None = None
    dropped: dict = field(default_factory=dict)


def run_reward_model(script_args, training_args, model_args, data_args) -> RewardResult:
    """Train a reward model on ``script_args.dataset_name``; see the module docstring."""
    splits, fmt, dropped = load_split_pairs(
        script_args.dataset_name, data_args, script_args.dataset_config, script_args.dataset_train_split
    )
    check_reward_head(model_args.model_name_or_path or "")
    torch.manual_seed(training_args.seed)  # the new score head follows `seed`, as in trl's RewardTrainer
    model, tokenizer = load_preference_start(
        model_args, "sequence-classification", fmt,
        num_labels=1, id2label={0: REWARD_LABEL}, label2id={REWARD_LABEL: 0},
    )  # fmt: skip
    cap_max_length(training_args, model)
    logger.info(
        "pairs (%s): %d train, %d test, %d validation; dropped %s", fmt,
        *(len(splits[k]) for k in ("train", "test", "validation")), dict(dropped) or "none",
    )  # fmt: skip
    _report_overlong(splits["train"], tokenizer, training_args.max_length)
    if model_args.use_peft:
        model = apply_lora(model, model_args, "SEQ_CLS")
    if training_args.eval_strategy != "no" and not splits["validation"]:
        raise ValueError("eval_strategy is set but there is no validation data: raise validation_size")
    prepare_output_dir(training_args)
    trainer = without_dataset_bars(RewardTrainer)(
        model=model,
        args=training_args,
        train_dataset=to_dataset(splits["train"]),
        eval_dataset=to_dataset(splits["validation"]) if training_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
    )
    held_out = splits["test"] or splits["validation"]
    metrics = {}
    if held_out:
        metrics.update(
            {f"test_{k}_before": v for k, v in evaluate_pairs(trainer.model, tokenizer, held_out).items()}
        )
    metrics.update(train_and_evaluate(trainer))
    if held_out:
        metrics.update(
            {f"test_{k}": v for k, v in evaluate_pairs(trainer.model, tokenizer, held_out).items()}
        )
        metrics["test_pairs"] = len(held_out)
    metrics["dropped_pairs"] = sum(dropped.values())

    out = Path(training_args.output_dir)
    # a plain classifier: pipeline() and RL load it as it is
    final = merge_lora(copy.deepcopy(trainer.model)) if model_args.use_peft else None
    finish_run(trainer, tokenizer, "reward_model", metrics, model=final, dropped=dict(dropped),
               card={"dataset": script_args.dataset_name, "prompt": "The answer is correct and concise."})  # fmt: skip
    return RewardResult(trainer, metrics, out, dict(dropped))


def _report_overlong(pairs: list[dict], tokenizer, max_length: int | None) -> None:
    if max_length is None:
        return
    lengths = [
        max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in pair_texts(p, tokenizer))
        for p in pairs
    ]
    n = sum(n > max_length for n in lengths)
    if n:
        logger.warning(
            "%d of %d training pairs are longer than max_length=%d tokens: trl's RewardTrainer leaves them out",
            n, len(pairs), max_length,
        )  # fmt: skip


class RewardModelReward:
    """A trained reward model as a reward function for trl's online trainers (``rl.py``).

    Scores ``prompt + completion`` (plus eos when the completion ended with it, as in reward training) with
    the one-label head. Called as trl calls reward functions: ``(prompts, completions, completion_ids, ...)``.
    """

    def __init__(self, model, tokenizer, batch_size: int = 16):
        n = model.config.num_labels
        if n != 1:
            raise ValueError(
                f"the reward model has a score head with {n} labels; a reward is one number per text: "
                "train one with recipes/reward_model.py"
            )
        if tokenizer.pad_token_id is None:
            raise ValueError(
                "the reward model's tokenizer has no pad token; save it with one (reward_model.py does)"
            )
        model.config.pad_token_id = tokenizer.pad_token_id
        self.model, self.tokenizer, self.batch_size = (
            model.eval().requires_grad_(False),
            tokenizer,
            batch_size,
        )
        self.__name__ = "reward_model"  # trl names the logged metric after it

    @classmethod
    def from_pretrained(cls, path: str, **kwargs) -> RewardModelReward:
        """Load a saved reward model (hfpipe or any one-label ``AutoModelForSequenceClassification``)."""
        check_reward_head(path)
        config = read_config(path) if not is_adapter(path) else {}
        archs = config.get("architectures") or []
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ValueError(
                f"{path} holds a {'/'.join(archs)}, not a reward model (a one-label sequence classifier); "
                "train one with recipes/reward_model.py"
            )
        return cls(load_model(path, "sequence-classification"), load_tokenizer(path), **kwargs)

    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        eos = self.tokenizer.eos_token_id
        texts = []
        for i, (p, c) in enumerate(zip(prompts, completions)):
            ended = completion_ids is not None and completion_ids[i] and completion_ids[i][-1] == eos
            if isinstance(p, list):  # conversational
                texts.append(self.tokenizer.apply_chat_template(p + c, tokenize=False))
            else:
                texts.append(p + c + (self.tokenizer.eos_token if ended else ""))
        device = next(self.model.parameters()).device
        self.model.to(device)
        return score_texts(self.model, self.tokenizer, texts, self.batch_size)


__all__ = [
    "REWARD_LABEL",
    "RewardModelReward",
    "RewardResult",
    "check_reward_head",
    "evaluate_pairs",
    "pair_texts",
    "pairwise_metrics",
    "run_reward_model",
    "score_texts",
]
