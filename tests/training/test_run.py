"""hfpipe.training.run: resuming a real Trainer (tied and untied head), and trl trainers preparing data quietly."""

import logging

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.tokenization import train_bpe_tokenizer
from hfpipe.training.run import train_and_evaluate

TEXTS = [
    f"the {a} {b} sat on the {c}." for a in ("big", "red") for b in ("cat", "dog") for c in ("mat", "log")
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXTS * 4, vocab_size=300, model_max_length=32)


def tiny_model(tokenizer, tied: bool) -> GPTForCausalLM:
    torch.manual_seed(0)
    config = GPTConfig.from_preset("tiny", vocab_size=len(tokenizer), context_length=32, emb_dim=32, n_layers=1,
                                   n_heads=2, tie_word_embeddings=tied)  # fmt: skip
    return GPTForCausalLM(config)


def trainer(tokenizer, out, max_steps: int, tied: bool) -> Trainer:
    data = Dataset.from_dict({"text": TEXTS}).map(
        lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"]
    )
    args = TrainingArguments(str(out), max_steps=max_steps, per_device_train_batch_size=2, save_steps=2,
                             report_to="none", disable_tqdm=True, use_cpu=True, bf16=False)  # fmt: skip
    return Trainer(model=tiny_model(tokenizer, tied), args=args, train_dataset=data,
                   data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))  # fmt: skip


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("tied", [True, False])
def test_a_resume_says_nothing_of_missing_keys_and_keeps_the_head(tokenizer, tmp_path, tied):
    train_and_evaluate(trainer(tokenizer, tmp_path, 2, tied))
    resumed = trainer(tokenizer, tmp_path, 4, tied)
    handler = Lines()
    hf_logging.get_logger("transformers.trainer").addHandler(handler)
    try:
        train_and_evaluate(resumed)
    finally:
        hf_logging.get_logger("transformers.trainer").removeHandler(handler)
    assert resumed.state.global_step == 4
    assert not [line for line in handler.lines if "missing keys" in line], handler.lines
    model = resumed.model
    assert (model.lm_head.weight is model.model.tok_emb.weight) == tied


@pytest.mark.parametrize("kind", ["SFTTrainer", "DPOTrainer"])
def test_trl_prepares_its_datasets_without_a_bar_each(kind, tokenizer, tmp_path, capfd):
    import copy

    import datasets
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from hfpipe.training.run import without_dataset_bars

    def build(make):
        model = tiny_model(tokenizer, tied=True)
        common = dict(max_length=32, report_to="none", use_cpu=True, bf16=False)
        if kind == "SFTTrainer":
            return make(SFTTrainer)(model=model, args=SFTConfig(str(tmp_path), **common), processing_class=tokenizer,
                                    train_dataset=Dataset.from_dict({"text": TEXTS}))  # fmt: skip
        pairs = Dataset.from_dict({"prompt": ["the cat sat on the"] * 4, "chosen": [" mat."] * 4,
                                   "rejected": [" log log"] * 4})  # fmt: skip
        return make(DPOTrainer)(model=model, ref_model=copy.deepcopy(model), args=DPOConfig(str(tmp_path), **common),
                                processing_class=tokenizer, train_dataset=pairs)  # fmt: skip

    datasets.enable_progress_bars()
    capfd.readouterr()
    build(without_dataset_bars)
    quiet = capfd.readouterr().err
    assert datasets.is_progress_bar_enabled()  # on again afterwards
    build(lambda cls: cls)
    plain = capfd.readouterr().err
    assert "Tokenizing" in plain, plain  # trl's own bars: the check can fail
    assert "Tokenizing" not in quiet and "examples/s" not in quiet, quiet
