"""recipes/dpo.py end to end on a tiny model: metrics, answers, a frozen reference, LoRA, resume after SIGKILL."""

import json
import logging
import os
import sys
from pathlib import Path

import pytest
import torch
from trl.trainer.utils import add_fused_lm_head

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "dpo.py"
sys.path.insert(0, str(REPO / "tests" / "preference"))
from pref_fixtures import common_args, one_torch_thread, preference_records, save_start_model, write_json  # noqa: E402, F401

from hfpipe.cli import dpo  # noqa: E402
from hfpipe.loading import load_model  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("dpo")
    return save_start_model(work / "sft"), write_json(work / "pref.json", preference_records(40))


def args(setup, out, *extra):
    start, data = setup
    return [
        "--model_name_or_path", str(start), "--dataset_name", str(data), "--learning_rate", "1e-3",
        "--test_answers", "2", "--answer_max_new_tokens", "6", "--save_strategy", "no",
        *common_args(out, "--max_steps", "6", *extra),
    ]  # fmt: skip


def log_probs(trainer, model, n=4):
    """Summed completion log-probs of the first n training pairs (chosen, then rejected) under ``model``."""
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(n)])
    return torch.cat(trainer.compute_ref_log_probs(model, batch))


def start_log_probs(trainer, start):
    model = load_model(start).eval()
    add_fused_lm_head(model)
    return log_probs(trainer, model)


def policy_log_probs(trainer):
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        out = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                            fused_lm_head=True)  # fmt: skip
    return out.log_probs.sum(dim=1)


@pytest.mark.parametrize("lora", [False, True], ids=["frozen-copy", "lora-adapter-disabled"])
def test_dpo_learns_and_the_reference_does_not_move(setup, tmp_path, lora, capsys):
    extra = (
        ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--save_merged", "true"] if lora else []
    )
    result = dpo.main(args(setup, tmp_path / "out", "--eval_strategy", "steps", "--eval_steps", "6", *extra))
    trainer, m = result.trainer, result.metrics
    assert (trainer.ref_model is None) == lora  # LoRA: no second copy in memory
    ref_now = log_probs(trainer, trainer.ref_model if not lora else trainer.model)
    torch.testing.assert_close(ref_now, start_log_probs(trainer, setup[0]), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(policy_log_probs(trainer), ref_now, atol=1e-2)  # while the policy moved
    if not lora:
        assert not any(p.requires_grad for p in trainer.ref_model.parameters())

    assert m["test_rewards/accuracies_before"] == 0.0 and m["test_rewards/margins_before"] == 0.0
    assert m["test_rewards/accuracies"] >= 0.75 and m["test_rewards/margins"] > 0  # rude vs polite: easy
    assert m["test_pairs"] == 4 and "eval_rewards/margins" in m
    out = tmp_path / "out"
    answers = json.loads((out / dpo.ANSWERS_FILE).read_text())
    assert len(answers) == 2 and {"instruction", "chosen", "rejected", "before", "after"} <= set(answers[0])
    results = json.loads((out / "results.json").read_text())
    assert (
        results["stage"] == "dpo"
        and results["metrics"]["test_rewards/accuracies"] == m["test_rewards/accuracies"]
    )
    assert (out / ("adapter_config.json" if lora else "config.json")).is_file()
    if lora:
        assert (out / "merged" / "model.safetensors").is_file()
    printed = capsys.readouterr().out
    assert "reward accuracy 0.0 % ->" in printed and "before:" in printed


def test_precomputed_reference_and_ipo_loss(setup, tmp_path):
    result = dpo.main(args(setup, tmp_path / "out", "--precompute_ref_log_probs", "true", "--loss_type", "ipo",
                           "--beta", "0.5", "--max_steps", "3", "--test_answers", "0"))  # fmt: skip
    assert "ref_chosen_logps" in result.trainer.train_dataset.column_names
    assert result.trainer.beta == 0.5 and result.trainer.loss_types == ["ipo"]
    assert result.metrics["test_rewards/margins"] != 0.0


def test_start_model_not_instruction_tuned_is_a_warning(setup, tmp_path):
    start = save_start_model(tmp_path / "pretrained", sft=False)
    with pytest.warns(UserWarning, match="does not look instruction-tuned"):
        dpo.main(args((start, setup[1]), tmp_path / "out", "--max_steps", "1", "--test_answers", "0"))


def test_resume_after_sigkill(kill_when_ready, setup, tmp_path, caplog):
    steps = ["--max_steps", "8", "--save_strategy", "steps", "--save_steps", "2", "--test_answers", "0"]
    straight = dpo.main(args(setup, tmp_path / "straight", *steps))
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(RECIPE), *args(setup, killed, *steps)]
    kill_when_ready(cmd, killed / "checkpoint-4" / "trainer_state.json", env=env)
    assert not (killed / "model.safetensors").exists()
    caplog.set_level(logging.INFO, logger="hfpipe.training.run")
    resumed = dpo.main(args(setup, killed, *steps))
    assert resumed.trainer.state.global_step == 8
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming from")]
    assert messages and messages[0].endswith(("checkpoint-4", "checkpoint-6"))  # it did not start over
    assert resumed.metrics["test_loss"] == pytest.approx(straight.metrics["test_loss"], abs=1e-4)


def test_start_from_an_sft_lora_adapter(setup, tmp_path):
    from trl import ModelConfig

    from hfpipe.lora import apply_lora

    base = load_model(setup[0])
    adapter = apply_lora(base, ModelConfig(lora_r=4, lora_alpha=8), "CAUSAL_LM")
    torch.manual_seed(1)
    for name, p in adapter.named_parameters():
        if "lora_B" in name:  # an adapter that changes the model, as a trained one does
            torch.nn.init.normal_(p, std=0.05)
    adapter.save_pretrained(tmp_path / "sft-adapter")
    (tmp_path / "sft-adapter" / "results.json").write_text(
        '{"model": "sft-adapter", "stage": "sft", "metrics": {}}'
    )
    merged = load_model(tmp_path / "sft-adapter", merge_adapter=True).eval()
    add_fused_lm_head(merged)

    result = dpo.main(args((tmp_path / "sft-adapter", setup[1]), tmp_path / "out", "--max_steps", "2",
                           "--test_answers", "0", "--use_peft", "true", "--lora_r", "4"))  # fmt: skip
    trainer = result.trainer
    # the reference is the SFT model (base + SFT adapter), not the bare base
    torch.testing.assert_close(
        log_probs(trainer, trainer.model), log_probs(trainer, merged), atol=1e-4, rtol=1e-4
    )
    assert not torch.allclose(log_probs(trainer, merged), start_log_probs(trainer, setup[0]), atol=1e-3)
    saved = load_model(tmp_path / "out")  # merged: it loads without the SFT adapter
    assert not hasattr(saved, "peft_config")
