"""GPTForCausalLM with the rest of the stack: peft LoRA, trl SFTTrainer, transformers Trainer, pipeline()."""

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments, pipeline
from trl import SFTConfig, SFTTrainer

from hfpipe import GPTForCausalLM
from hfpipe.lora import DEFAULT_TARGET_MODULES

from .conftest import SENTENCES


def test_lora_trains_and_merges(tiny_model, tiny_config):
    block_linears = {n for n, m in tiny_model.model.blocks.named_modules() if isinstance(m, torch.nn.Linear)}
    config = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=DEFAULT_TARGET_MODULES, task_type="CAUSAL_LM"
    )
    model = get_peft_model(tiny_model, config)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    wrapped = {name.split("blocks.")[-1] for name, m in model.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == block_linears  # hfpipe's default targets are every linear of every block

    torch.manual_seed(0)
    batch = torch.randint(2, tiny_config.vocab_size, (4, 16))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses

    model.eval()
    with torch.no_grad():
        adapted = model(input_ids=batch).logits
        with model.disable_adapter():
            base = model(input_ids=batch).logits
    assert not torch.allclose(adapted, base, atol=1e-3)  # the adapters changed the model
    merged = model.merge_and_unload()
    assert type(merged) is GPTForCausalLM and not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(batch).logits, adapted, atol=1e-4, rtol=1e-4)


def _lm_dataset(tokenizer) -> Dataset:
    texts = Dataset.from_dict({"text": SENTENCES * 4})
    return texts.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])


def test_trainer_loss_drops(tmp_path, tiny_model, tokenizer):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=15,
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(
        model=tiny_model.train(),
        args=args,
        train_dataset=_lm_dataset(tokenizer),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 15
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses


def test_sft_trainer_with_default_config(tmp_path, tiny_model, tokenizer):
    # trl's defaults otherwise, including gradient checkpointing and bf16 (which needs use_cpu on a CPU machine)
    args = SFTConfig(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4, report_to="none", use_cpu=True
    )
    assert getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing  # renamed in 5.23
    assert args.bf16
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    trainer = SFTTrainer(
        model=tiny_model,
        args=args,
        train_dataset=Dataset.from_dict({"text": SENTENCES * 4}),
        processing_class=tokenizer,
    )
    result = trainer.train()
    assert (
        getattr(trainer.model, "is_activation_checkpointing", None) or trainer.model.is_gradient_checkpointing
    )
    assert result.global_step == 3
    assert torch.isfinite(torch.tensor(result.training_loss))
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert len(changed) == len(before)


def test_text_generation_pipeline_from_saved_dir(tmp_path, tiny_model, tokenizer):
    tiny_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path), device="cpu")
    assert type(generator.model) is GPTForCausalLM
    prompt = "The quick brown fox"
    out = generator(prompt, max_new_tokens=6, do_sample=False)
    ids = tokenizer(prompt, return_tensors="pt")
    expected = tiny_model.generate(
        **ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    assert out[0]["generated_text"] == tokenizer.decode(expected[0], skip_special_tokens=True)
    assert out[0]["generated_text"].startswith(prompt)


@pytest.mark.parametrize("temperature", [0.7])
def test_pipeline_sampling(tmp_path, tiny_model, tokenizer, temperature):
    tiny_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path), device="cpu")
    outs = generator(
        "Speak", max_new_tokens=8, do_sample=True, temperature=temperature, top_k=20, num_return_sequences=4
    )
    assert len(outs) == 4 and all(o["generated_text"].startswith("Speak") for o in outs)
    assert len({o["generated_text"] for o in outs}) > 1
