"""hfpipe.training.callbacks with every trainer that hfpipe recipes use: Trainer, SFTTrainer, DPOTrainer, RewardTrainer."""

import copy
import math

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

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


def build(kind: str, tokenizer, out):
    text = Dataset.from_dict({"text": TEXTS})
    pairs = Dataset.from_dict(
        {"prompt": ["the cat sat on the"] * 6, "chosen": [" mat."] * 6, "rejected": [" log log log"] * 6}
    )
    if kind == "Trainer":
        enc = text.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
        return Trainer(
            model=tiny(GPTForCausalLM, tokenizer), args=TrainingArguments(str(out), **COMMON), train_dataset=enc,
            eval_dataset=enc, data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
            callbacks=standard_callbacks(tokenizer, "the cat", 4),
        )  # fmt: skip
    if kind == "SFTTrainer":
        return SFTTrainer(
            model=tiny(GPTForCausalLM, tokenizer), args=SFTConfig(str(out), max_length=32, **COMMON),
            train_dataset=text, eval_dataset=text, processing_class=tokenizer,
            callbacks=standard_callbacks(tokenizer, "the cat", 4),
        )  # fmt: skip
    if kind == "DPOTrainer":
        policy = tiny(GPTForCausalLM, tokenizer)
        return DPOTrainer(
            model=policy, ref_model=copy.deepcopy(policy), args=DPOConfig(str(out), max_length=32, **COMMON),
            train_dataset=pairs, eval_dataset=pairs, processing_class=tokenizer,
            callbacks=standard_callbacks(tokenizer, "the cat", 4),
        )  # fmt: skip
    return RewardTrainer(
        model=tiny(GPTForSequenceClassification, tokenizer, num_labels=1),
        args=RewardConfig(str(out), max_length=32, **COMMON),
        train_dataset=pairs, eval_dataset=pairs, processing_class=tokenizer,
        callbacks=standard_callbacks(),
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["Trainer", "SFTTrainer", "DPOTrainer", "RewardTrainer"])
def test_every_trainer_takes_the_callbacks(kind, tokenizer, tmp_path):
    trainer = build(kind, tokenizer, tmp_path)
    add_callbacks(
        trainer, [cb for cb in trainer.callback_handler.callbacks if type(cb).__module__.startswith("hfpipe")]
    )
    trainer.train()
    history = trainer.state.log_history
    train_logs = [h for h in history if "loss" in h]
    assert train_logs and all("tokens_seen" in h for h in train_logs)
    assert train_logs[-1]["tokens_seen"] > train_logs[0]["tokens_seen"] > 0
    assert all(h["tokens_per_second"] > 0 for h in train_logs[1:])
    evals = [h for h in history if "eval_loss" in h]
    assert evals and evals[-1]["eval_perplexity"] == pytest.approx(math.exp(evals[-1]["eval_loss"]))
    plot = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, LossPlotCallback))
    assert plot.path == tmp_path / "loss.png" and plot.path.stat().st_size > 1000
    samplers = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, SampleTextCallback)]
    if kind != "RewardTrainer":
        assert samplers[0].samples and samplers[0].samples[0][0] == 4


def test_add_callbacks_puts_them_before_the_loggers(tokenizer, tmp_path):
    trainer = build("Trainer", tokenizer, tmp_path)
    names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    ours = standard_callbacks()
    add_callbacks(trainer, ours)
    order = trainer.callback_handler.callbacks
    assert order[0].__class__.__name__ == "DefaultFlowCallback" and order[1 : 1 + len(ours)] == ours
    assert len(order) == len(names) + len(ours)


def test_nan_guard_stops_before_the_optimizer_step(tokenizer, tmp_path):
    trainer = build("Trainer", tokenizer, tmp_path)
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
