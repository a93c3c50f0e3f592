"""``optimizer: muon``: which weights Muon gets, one schedule for both optimizers, the state in the checkpoint,
an identical resume after SIGKILL, LoRA and other settings refused in one line, DDP and FSDP2 (slow)."""

import copy
import json
import logging
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import Trainer, TrainingArguments
from trl import ModelConfig

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "recipes"))
from test_pretrain import tiny_args, write_corpus  # noqa: E402
from test_pretrain_fsdp import ENV as FSDP_ENV  # noqa: E402
from test_pretrain_fsdp import accelerate_launch, resumed_from, run  # noqa: E402
from test_user_errors import one_line_error  # noqa: E402

from hfpipe.cli import pretrain, sft  # noqa: E402
from hfpipe.lora import apply_lora  # noqa: E402
from hfpipe.models.gpt import GPTConfig, GPTForCausalLM, GPTForSequenceClassification  # noqa: E402
from hfpipe.training.muon import MuonWithAdamW, OptimizerArguments, hidden_matrices  # noqa: E402
from hfpipe.training.run import train_and_evaluate  # noqa: E402

MUON = ["--optimizer", "muon", "--muon_learning_rate", "0.02"]
HIDDEN = {"att.qkv.weight", "att.out_proj.weight", "ff.fc1.weight", "ff.fc2.weight"}


def tiny_config(**overrides) -> GPTConfig:
    return GPTConfig.from_preset(
        "tiny", vocab_size=64, context_length=16, emb_dim=32, n_heads=2, n_layers=2, **overrides
    )


def names(model: nn.Module, params) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_muon_gets_the_2d_weights_inside_the_blocks_and_adamw_the_rest():
    model = GPTForCausalLM(tiny_config(tie_word_embeddings=False))
    assert names(model, hidden_matrices(model)) == {f"model.blocks.{i}.{n}" for i in (0, 1) for n in HIDDEN}
    classifier = GPTForSequenceClassification(tiny_config(num_labels=2))
    assert "score.weight" not in names(classifier, hidden_matrices(classifier))
    assert len(hidden_matrices(classifier)) == 8


@pytest.mark.parametrize("architecture", ["llama", "nanochat"])
def test_muon_gets_the_block_matrices_of_every_architecture(architecture):
    """swiglu's gate_up and grouped-query qkv go to Muon; qk-norm weights (1-D) and the rotary buffers do not."""
    model = GPTForCausalLM(GPTConfig.from_preset("tiny", architecture))
    linears = {
        f"model.blocks.{n}.weight" for n, m in model.model.blocks.named_modules() if isinstance(m, nn.Linear)
    }
    assert names(model, hidden_matrices(model)) == linears


def test_the_rule_is_by_position_not_by_module_name():
    """Any layout: 2-D weights of the repeated blocks, whatever they are called; no embedding, norm or bias."""

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(10, 8)
            block = lambda: nn.ModuleDict(  # noqa: E731
                {"gate_up": nn.Linear(8, 16), "down": nn.Linear(16, 8, bias=False),
                 "value_embed": nn.Embedding(10, 8), "rms": nn.RMSNorm(8)}
            )  # fmt: skip
            self.layers = nn.ModuleList(block() for _ in range(3))
            self.head = nn.Linear(8, 10)

    model = Odd()
    assert names(model, hidden_matrices(model)) == {
        f"layers.{i}.{n}.weight" for i in range(3) for n in ("gate_up", "down")
    }


def optimizer_for(model) -> MuonWithAdamW:
    decay = [n for n, p in model.named_parameters() if p.ndim == 2]
    return MuonWithAdamW(model, decay_parameters=decay, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99), eps=1e-8,
                         fused=False, muon_lr=0.02, muon_weight_decay=0.0, muon_momentum=0.95,
                         muon_adjust_lr_fn="original")  # fmt: skip


def train_steps(model, optimizer, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(0, 64, (4, 16), generator=gen)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_a_loaded_state_dict_continues_exactly_like_the_original():
    torch.manual_seed(0)
    model = GPTForCausalLM(tiny_config())
    optimizer = optimizer_for(model)
    train_steps(model, optimizer, 3, seed=1)
    state = copy.deepcopy(optimizer.state_dict())
    assert [len(g["params"]) for g in state["param_groups"]] == [3, 16, 8]  # AdamW decay, no decay, Muon
    assert all("momentum_buffer" in state["state"][i] for i in state["param_groups"][2]["params"])

    twin = copy.deepcopy(model)
    loaded = optimizer_for(twin)
    loaded.load_state_dict(state)
    assert loaded.muon.state is loaded.state and loaded.adamw.param_groups[0] is loaded.param_groups[0]
    train_steps(model, optimizer, 3, seed=2)
    train_steps(twin, loaded, 3, seed=2)
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_pretraining_with_muon_one_schedule_and_the_state_in_the_checkpoint(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "muon"
    trainer = pretrain.main(tiny_args(corpus, out, *MUON))
    optimizer = trainer.optimizer.optimizer  # inside accelerate's AcceleratedOptimizer
    assert isinstance(optimizer, MuonWithAdamW)
    adamw_decay, adamw_rest, muon = optimizer.param_groups
    assert (adamw_decay["weight_decay"], adamw_rest["weight_decay"], muon["weight_decay"]) == (0.1, 0.0, 0.0)
    # warm-up + cosine to 0.1 of each group's own peak
    assert adamw_decay["lr"] == pytest.approx(3e-3 * 0.1) and muon["lr"] == pytest.approx(0.02 * 0.1)
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    assert max(logged) <= 3e-3  # Trainer logs AdamW's learning_rate
    results = json.loads((out / "results.json").read_text())
    assert results["optimizer"] == "muon+adamw"
    metrics = results["metrics"]
    assert metrics["eval_loss"] < 4.5  # log(300) = 5.7: it learned
    saved = torch.load(out / "checkpoint-24" / "optimizer.pt", weights_only=True)
    assert [len(g["params"]) for g in saved["param_groups"]] == [3, 16, 8]
    muon_ids = saved["param_groups"][2]["params"]
    assert all(set(saved["state"][i]) == {"momentum_buffer"} for i in muon_ids)
    assert all("exp_avg_sq" in saved["state"][i] for i in saved["param_groups"][0]["params"])


def test_resume_after_sigkill_with_muon_matches_the_uninterrupted_run(kill_when_ready, tmp_path, caplog):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    args = [*MUON, "--max_steps", "30", "--save_steps", "10", "--eval_steps", "30", "--save_total_limit", "5"]
    straight = tmp_path / "straight"
    pretrain.main(tiny_args(corpus, straight, *args))

    killed = tmp_path / "killed"
    cmd = [sys.executable, str(REPO / "recipes" / "pretrain.py"), *tiny_args(corpus, killed, *args)]
    # one thread, as this process (conftest): Newton-Schulz runs in bf16, where another summation order shows
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kill_when_ready(cmd, killed / "checkpoint-10" / "trainer_state.json", env=env)
    assert not (killed / "model.safetensors").exists()  # it really died mid-run

    caplog.set_level(logging.INFO, logger="hfpipe.training.run")
    trainer = pretrain.main(tiny_args(corpus, killed, *args))  # resumes on its own
    assert isinstance(trainer.optimizer.optimizer, MuonWithAdamW) and trainer.state.global_step == 30
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming from")]
    assert resumed and resumed[0].endswith(("checkpoint-10", "checkpoint-20"))  # it did not start over
    final = [json.loads((d / "results.json").read_text())["metrics"]["eval_loss"] for d in (killed, straight)]
    assert final[0] == pytest.approx(final[1], abs=1e-5)
    a, b = load_file(killed / "model.safetensors"), load_file(straight / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--optimizer", "sgd"], "optimizer must be one of adamw, muon, got 'sgd'"),
        ([*MUON, "--muon_learning_rate", "-0.01"], "muon_learning_rate must be positive, got -0.01"),
        ([*MUON, "--muon_weight_decay", "-1"], "muon_weight_decay must be at least 0"),
        ([*MUON, "--muon_momentum", "1"], r"muon_momentum must be in \[0, 1\)"),
        ([*MUON, "--muon_adjust_lr_fn", "rms"], "muon_adjust_lr_fn must be one of original, match_rms_adamw"),
        ([*MUON, "--optim", "adafactor"], "optimizer: muon uses AdamW .* and optim is adafactor"),
    ],
)
def test_a_setting_muon_cannot_honour_is_one_line(extra, message, tmp_path, capsys):
    line = one_line_error(pretrain.main, ["--output_dir", str(tmp_path / "o"), *extra], capsys)
    assert re.search(message, line), line
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_muon_with_lora_is_refused_in_one_line(tmp_path, capsys):
    args = ["--model_name_or_path", str(tmp_path), "--output_dir", str(tmp_path / "o"), "--use_peft", "true"]
    line = one_line_error(sft.main, [*args, *MUON], capsys)
    assert line.startswith(
        "error: optimizer: muon trains whole weight matrices, and use_peft trains low-rank"
    )


def test_a_peft_model_given_to_the_lifecycle_with_muon_is_refused(tmp_path):
    """The same rule where a stage builds the trainer itself: before any step."""
    model = apply_lora(GPTForCausalLM(tiny_config()), ModelConfig(use_peft=True, lora_r=4), "CAUSAL_LM")
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, report_to="none", use_cpu=True)
    args.hfpipe_optimizer = OptimizerArguments(optimizer="muon")
    ids = torch.randint(0, 64, (8, 16))
    trainer = Trainer(model=model, args=args, train_dataset=[{"input_ids": r, "labels": r} for r in ids])
    with pytest.raises(ValueError, match="use_peft trains low-rank LoRA factors"):
        train_and_evaluate(trainer)
    assert trainer.state.global_step == 0


def test_sft_of_a_llama_with_muon_takes_its_own_block_matrices(tmp_path):
    """trl's SFTTrainer through the same lifecycle, on transformers' Llama: Muon gets its 7 matrices per layer
    (q, k, v, o, gate, up, down) by position; embeddings, head and RMSNorms stay with AdamW."""
    sys.path.insert(0, str(REPO / "tests" / "sft"))
    from sft_fixtures import alpaca_records, save_llama_model, write_json

    start = save_llama_model(tmp_path / "llama")
    data = write_json(tmp_path / "data.json", alpaca_records(40))
    args = ["--config", str(REPO / "recipes/configs/sft_alpaca.yaml"), "--model_name_or_path", str(start),
            "--dataset_name", str(data), "--output_dir", str(tmp_path / "sft"), "--max_steps", "8",
            "--learning_rate", "3e-3", "--test_answers", "1", "--answer_max_new_tokens", "4", *MUON]  # fmt: skip
    result = sft.main(args)
    optimizer = result.trainer.optimizer.optimizer
    assert isinstance(optimizer, MuonWithAdamW)
    model = result.trainer.model
    muon = names(model, optimizer.muon.param_groups[0]["params"])
    assert len(muon) == 2 * 7 and all(".layers." in n and "norm" not in n for n in muon)
    assert result.metrics["eval_loss"] < result.metrics["eval_loss_before"]


def launcher_results(out: Path) -> list[dict]:
    return [json.loads((out / f"result-{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_muon_under_ddp_and_fsdp2_trains_the_same_model(tmp_path):
    """2 gloo processes: DDP (each replica the same update) and FSDP2 (row-sharded DTensor matrices; torch's Muon
    gathers through DTensor what Newton-Schulz needs) give the same losses and weights; FSDP2 saves the Muon
    state in its sharded optimizer checkpoint."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    launcher = REPO / "tests" / "recipes" / "cpu_fsdp_launch.py"
    steps = ["--max_steps", "12", "--save_steps", "12", "--eval_steps", "12", "--logging_steps", "2"]
    loss = lambda r: [h["loss"] for h in r["log_history"] if "loss" in h]  # noqa: E731
    results = {}
    for config, port in (("cpu.yaml", 29721), ("fsdp.yaml", 29722)):
        out = tmp_path / config
        run(accelerate_launch(config, 2, port, launcher, tiny_args(corpus, out, *MUON, *steps)))
        rank0, rank1 = launcher_results(out)
        assert rank0["world_size"] == 2 and loss(rank0) == loss(rank1)
        results[config] = rank0
    ddp, fsdp = results["cpu.yaml"], results["fsdp.yaml"]
    assert not ddp["fsdp"] and fsdp["fsdp"] and fsdp["sharded_param"] and fsdp["local_rows"] == 150
    assert loss(fsdp) == pytest.approx(loss(ddp), abs=2e-3) and loss(ddp)[-1] < loss(ddp)[0] - 0.5
    # bf16 Newton-Schulz: the same update up to rounding (a per-shard orthogonalisation would be far off)
    assert fsdp["weight_norms"] == pytest.approx(ddp["weight_norms"], rel=2e-3)
    assert sorted(p.name for p in (tmp_path / "fsdp.yaml" / "checkpoint-12" / "optimizer_0").iterdir()) == [
        ".metadata", "__0_0.distcp", "__1_0.distcp",
    ]  # fmt: skip


@pytest.mark.slow
def test_fsdp2_with_muon_killed_and_resumed_ends_like_the_uninterrupted_run(kill_when_ready, tmp_path):
    """The Muon momentum goes into FSDP2's sharded optimizer checkpoint and comes back on resume."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    launcher = REPO / "tests" / "recipes" / "cpu_fsdp_launch.py"
    steps = ["--max_steps", "24", "--save_steps", "4", "--eval_steps", "24", "--logging_steps", "2"]
    steps += ["--save_total_limit", "10"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(accelerate_launch("fsdp.yaml", 2, 29723, launcher, tiny_args(corpus, straight, *MUON, *steps)))
    cmd = accelerate_launch("fsdp.yaml", 2, 29724, launcher, tiny_args(corpus, killed, *MUON, *steps))
    kill_when_ready(cmd, killed / "checkpoint-4" / "trainer_state.json", env=FSDP_ENV, timeout=300)
    assert not (killed / "model.safetensors").exists()  # it really died mid-run
    assert resumed_from(run(cmd)) < 24
    a, b = launcher_results(straight)[0], launcher_results(killed)[0]
    assert b["global_step"] == 24
    assert b["weight_norms"] == pytest.approx(a["weight_norms"], rel=1e-4)
    last = lambda r: [h["eval_loss"] for h in r["log_history"] if "eval_loss" in h][-1]  # noqa: E731
    assert last(b) == pytest.approx(last(a), abs=1e-4)


def test_a_pipeline_stage_takes_the_muon_settings_and_checks_them_before_anything_runs(tmp_path):
    from hfpipe.pipeline import load_pipeline, plan
    from hfpipe.recipe_args import ConfigError

    def planned(stages: dict):
        path = tmp_path / "pipeline.yaml"
        path.write_text(json.dumps({"output_dir": str(tmp_path / "out"), "stages": stages}))
        return plan(load_pipeline(str(path)))

    pretrain_stage = planned({"pretrain": {"optimizer": "muon", "muon_learning_rate": 0.01}})[0]
    assert pretrain_stage.args[pretrain_stage.args.index("--optimizer") + 1] == "muon"
    with pytest.raises(ConfigError, match="stage 'pretrain': muon_momentum must be in"):
        planned({"pretrain": {"optimizer": "muon", "muon_momentum": 2}})
    with pytest.raises(ConfigError, match=r"stage 'evaluate': unknown key\(s\) \['optimizer'\]"):
        planned({"evaluate": {"optimizer": "muon", "model_name_or_path": str(tmp_path)}})


def test_an_absolute_min_lr_floors_both_groups_at_the_same_fraction():
    """cosine_with_min_lr with ``min_lr`` (as shakespeare_char.yaml) reads the optimizer's default lr."""
    from transformers import get_scheduler

    optimizer = optimizer_for(GPTForCausalLM(tiny_config()))
    peaks = [g["lr"] for g in optimizer.param_groups]
    scheduler = get_scheduler("cosine_with_min_lr", optimizer, num_warmup_steps=0, num_training_steps=10,
                              scheduler_specific_kwargs={"min_lr": peaks[0] / 10})  # fmt: skip
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([p / 10 for p in peaks])
