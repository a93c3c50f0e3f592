"""hfpipe.training.callbacks with every trainer hfpipe's stages use (Trainer, SFTTrainer, DPOTrainer, RewardTrainer,
GRPOTrainer), through the run lifecycle (``train_and_evaluate``), down to the TensorBoard event files."""

import copy
import math

import pytest
import torch
from datasets import Dataset
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments
from trl import (
    DPOConfig,
    DPOTrainer,
    GRPOConfig,
    GRPOTrainer,
    RewardConfig,
    RewardTrainer,
    SFTConfig,
    SFTTrainer,
)

from hfpipe import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from hfpipe.tokenization import train_bpe_tokenizer
from hfpipe.training.callbacks import (
    LossPlotCallback,
    NonFiniteLossError,
    SampleTextCallback,
    ThroughputCallback,
    add_callbacks,
    standard_callbacks,
)
from hfpipe.training.run import train_and_evaluate

TEXTS = [
    f"the {a} {b} sat on the {c}."
    for a in ("big", "small", "red")
    for b in ("cat", "dog")
    for c in ("mat", "log")
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXTS * 4, vocab_size=300, model_max_length=32)


def tiny(cls, tokenizer, **kw):
    torch.manual_seed(0)
    config = GPTConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), context_length=32, emb_dim=32, n_layers=1, n_heads=2,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **kw,
    )  # fmt: skip
    return cls(config)


COMMON = dict(max_steps=4, per_device_train_batch_size=2, per_device_eval_batch_size=2, logging_steps=2,
              eval_strategy="steps", eval_steps=4, save_strategy="no", report_to="none", disable_tqdm=True,
              use_cpu=True, bf16=False)  # fmt: skip


def build(kind: str, tokenizer, out, **overrides):
    """A tiny trainer of ``kind``, with no callbacks of hfpipe's: the lifecycle adds them."""
    text = Dataset.from_dict({"text": TEXTS})
    pairs = Dataset.from_dict(
        {"prompt": ["the cat sat on the"] * 6, "chosen": [" mat."] * 6, "rejected": [" log log log"] * 6}
    )
    common = {**COMMON, **overrides}
    if kind == "Trainer":
        enc = text.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
        return Trainer(
            model=tiny(GPTForCausalLM, tokenizer), args=TrainingArguments(str(out), **common), train_dataset=enc,
            eval_dataset=enc, data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        )  # fmt: skip
    if kind == "SFTTrainer":
        return SFTTrainer(
            model=tiny(GPTForCausalLM, tokenizer), args=SFTConfig(str(out), max_length=32, **common),
            train_dataset=text, eval_dataset=text, processing_class=tokenizer,
        )  # fmt: skip
    if kind == "DPOTrainer":
        policy = tiny(GPTForCausalLM, tokenizer)
        return DPOTrainer(
            model=policy, ref_model=copy.deepcopy(policy), args=DPOConfig(str(out), max_length=32, **common),
            train_dataset=pairs, eval_dataset=pairs, processing_class=tokenizer,
        )  # fmt: skip
    if kind == "GRPOTrainer":
        grpo = {
            k: v
            for k, v in common.items()
            if k not in ("eval_strategy", "eval_steps", "per_device_eval_batch_size")
        }
        return GRPOTrainer(
            model=tiny(GPTForCausalLM, tokenizer), reward_funcs=lambda completions, **kw: [float(len(c)) for c in completions],
            args=GRPOConfig(str(out), num_generations=2, max_completion_length=4, **grpo),
            train_dataset=pairs.select_columns(["prompt"]), processing_class=tokenizer,
        )  # fmt: skip
    return RewardTrainer(
        model=tiny(GPTForSequenceClassification, tokenizer, num_labels=1),
        args=RewardConfig(str(out), max_length=32, **common),
        train_dataset=pairs, eval_dataset=pairs, processing_class=tokenizer,
    )  # fmt: skip


def tensorboard_tags(logging_dir) -> set[str]:
    """Every scalar tag in the TensorBoard event files under ``logging_dir``."""
    tags = set()
    for events in sorted(p.parent for p in logging_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


@pytest.mark.parametrize("kind", ["Trainer", "SFTTrainer", "DPOTrainer", "RewardTrainer", "GRPOTrainer"])
def test_every_trainer_logs_hfpipe_figures_to_tensorboard(kind, tokenizer, tmp_path):
    trainer = build(kind, tokenizer, tmp_path, report_to="tensorboard")  # events under output_dir/runs
    sample = kind not in ("RewardTrainer", "GRPOTrainer")
    metrics = train_and_evaluate(trainer, standard_callbacks(tokenizer if sample else None, "the cat", 4))
    history = trainer.state.log_history
    train_logs = [h for h in history if "loss" in h]
    assert train_logs and all("tokens_seen" in h for h in train_logs)
    assert train_logs[-1]["tokens_seen"] > train_logs[0]["tokens_seen"] > 0
    assert all(h["tokens_per_second"] > 0 for h in train_logs[1:])
    assert metrics["tokens_seen"] == train_logs[-1]["tokens_seen"]
    tags = tensorboard_tags(tmp_path)
    assert {"train/tokens_per_second", "train/tokens_seen"} <= tags, sorted(tags)
    if kind != "GRPOTrainer":  # GRPO has no validation loss
        evals = [h for h in history if "eval_loss" in h]
        assert evals and evals[-1]["eval_perplexity"] == pytest.approx(math.exp(evals[-1]["eval_loss"]))
        assert "eval/perplexity" in tags, sorted(tags)
    plot = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, LossPlotCallback))
    assert plot.path == tmp_path / "loss.png" and plot.path.stat().st_size > 1000
    samplers = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, SampleTextCallback)]
    if sample:
        assert samplers[0].samples and samplers[0].samples[0][0] == 4


def test_add_callbacks_puts_them_before_the_loggers(tokenizer, tmp_path):
    trainer = build("Trainer", tokenizer, tmp_path, report_to="tensorboard")
    names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    ours = standard_callbacks()
    add_callbacks(trainer, ours)
    order = trainer.callback_handler.callbacks
    assert order[0].__class__.__name__ == "DefaultFlowCallback" and order[1 : 1 + len(ours)] == ours
    assert len(order) == len(names) + len(ours)


def test_nan_guard_stops_before_the_optimizer_step(tokenizer, tmp_path):
    trainer = build("Trainer", tokenizer, tmp_path)
    add_callbacks(trainer, standard_callbacks())
    with torch.no_grad():  # poison the forward pass: the loss is NaN from the first step
        trainer.model.model.final_norm.weight[0] = float("nan")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match="NaN or infinite.*before the optimizer step"):
        trainer.train()
    after = trainer.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k].nan_to_num(), after[k].nan_to_num())]
    assert not changed  # no optimizer step happened


def test_throughput_from_a_fixed_tokens_per_step_and_mfu():
    cb = ThroughputCallback(tokens_per_step=100, flops_per_token=1e6, peak_flops=1e9)

    class State:
        global_step, log_history = 0, []

    class Args:
        include_num_input_tokens_seen = "no"

    state, args = State(), Args()
    cb.on_train_begin(args, state, None)
    state.global_step = 10
    state.log_history = [{"loss": 1.0, "step": 10}]
    logs = {"loss": 1.0}
    cb.on_log(args, state, None, logs=logs)
    assert logs["tokens_seen"] == 1000 and state.log_history[-1]["tokens_seen"] == 1000
    assert logs["mfu"] == pytest.approx(logs["tokens_per_second"] * 1e6 / 1e9, rel=1e-3, abs=1e-4)
