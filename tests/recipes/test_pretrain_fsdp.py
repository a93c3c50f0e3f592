"""recipes/pretrain.py with several processes on this CPU-only machine: FSDP2 over gloo (killed and resumed),
and resuming a 2-process checkpoint (FSDP sharded, or DDP) with 1 process.

accelerate selects FSDP only for GPU devices (see cpu_fsdp_launch.py): the FSDP runs here go through that
test-only launcher, which takes accelerate's FSDP branch for CPU processes; the rest is the real recipe.
"""

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "accelerate_configs"
LAUNCHER = Path(__file__).with_name("cpu_fsdp_launch.py")
sys.path.insert(0, str(Path(__file__).parent))
from test_pretrain import tiny_args, write_corpus  # noqa: E402

from hfpipe.cli import pretrain  # noqa: E402
from hfpipe.pretraining import PretrainConfig  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HFPIPE_FAST_BF16": "0"}
# 60 steps, a sharded checkpoint every 20; loss logged every 2 steps; one evaluation at the end
RUN = ["--max_steps", "60", "--save_steps", "20", "--eval_steps", "60", "--logging_steps", "2"]
RUN += ["--save_total_limit", "5"]


def accelerate_launch(config: str, nproc: int, port: int, script: Path, args: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config),
        "--num_processes", str(nproc), "--mixed_precision", "no", "--main_process_port", str(port),
        str(script), *args,
    ]  # fmt: skip


def run(cmd: list[str], **env: str) -> str:
    """Run ``cmd`` to the end; its output (logs and errors together), which it must end without error."""
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, env={**ENV, **env}
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def losses(history: list[dict], after: int = 0, until: int = 10**9) -> list[tuple[int, float]]:
    return [(h["step"], h["loss"]) for h in history if "loss" in h and after < h["step"] <= until]


def resumed_from(output: str) -> int:
    match = re.search(r"resuming from \S*checkpoint-(\d+)", output)
    assert match, f"the run did not resume:\n{output[-3000:]}"
    return int(match.group(1))


def pre_kill_history(ckpt: Path) -> list[dict]:
    return json.loads((ckpt / "trainer_state.json").read_text())["log_history"]


def test_an_fsdp_accelerate_config_on_a_cpu_only_launch_is_refused(monkeypatch, tmp_path):
    """``accelerate launch --config_file accelerate_configs/fsdp.yaml`` sets ACCELERATE_USE_FSDP, not
    TrainingArguments.fsdp: on CPUs it would run DDP without a word."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match=r"fsdp needs GPUs.*\(or the FSDP accelerate config\)"):
        PretrainConfig(output_dir=str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: no data parallelism to get wrong
    PretrainConfig(output_dir=str(tmp_path))


@pytest.mark.slow
def test_fsdp_config_launched_on_cpus_fails_in_one_line_on_every_rank(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    cmd = accelerate_launch(
        "fsdp.yaml", 2, 29634, REPO / "recipes" / "pretrain.py", tiny_args(corpus, tmp_path / "o")
    )
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, env=ENV
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all(e.startswith("error: fsdp needs GPUs") for e in errors), proc.stdout[
        -3000:
    ]
    assert not (tmp_path / "o").exists()  # refused before anything was written


@pytest.mark.slow
def test_fsdp2_two_cpu_processes_killed_then_resumed_continue_the_loss(kill_when_ready, tmp_path):
    """2 gloo processes under FSDP2 (GPTBlock units, SHARDED_STATE_DICT) train, save sharded checkpoints,
    are SIGKILLed, and the same command resumes: the loss goes on from where it was. Then the killed run's
    checkpoint resumes with 1 process: under FSDP (the shards are redistributed), and without FSDP it is
    refused in one line."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "fsdp"
    args = tiny_args(corpus, out, *RUN)
    cmd = accelerate_launch("fsdp.yaml", 2, 29631, LAUNCHER, args)

    kill_when_ready(cmd, out / "checkpoint-20" / "trainer_state.json", env=ENV, timeout=300)
    assert not (out / "model.safetensors").exists()  # it really died mid-run
    ckpt = out / "checkpoint-20"
    assert sorted(p.name for p in (ckpt / "pytorch_model_fsdp_0").iterdir()) == [
        ".metadata", "__0_0.distcp", "__1_0.distcp",
    ]  # fmt: skip
    assert (ckpt / "optimizer_0").is_dir() and not list(ckpt.glob("*.safetensors"))
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)  # the killed run as it was, for the 1-process resumes below

    resumed = run(cmd)
    start = resumed_from(resumed)
    rank0 = json.loads((out / "result-0.json").read_text())
    assert rank0["fsdp"] and rank0["world_size"] == 2 and rank0["sharded_param"]
    assert rank0["local_rows"] == 150  # each rank holds half of the 300-token embedding
    assert rank0["global_step"] == 60  # the step count went on from the checkpoint
    before = losses(pre_kill_history(out / f"checkpoint-{start}"))
    after = losses(rank0["log_history"], after=start)
    assert after[0][0] == start + 2
    initial, last, first_resumed = before[0][1], before[-1][1], after[0][1]
    assert abs(first_resumed - last) < 0.3 < initial - last  # goes on from the checkpoint, far from a restart
    assert after[-1][1] < last
    # the final model is saved whole (SHARDED_STATE_DICT saves none) with the model's own code in auto_map
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_gpt.GPTForCausalLM"
    assert (out / "modeling_gpt.py").is_file() and not list(out.glob("_fsdp*.py"))
    model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)
    assert model.num_parameters() == rank0["num_parameters"]
    saved = {k: v.double().sum().item() for k, v in model.state_dict().items()}  # the trained weights:
    assert saved == pytest.approx({k: rank0["weight_sums"][k] for k in saved}, rel=1e-6)

    # 2 -> 1 process without FSDP: refused in one line (the run would otherwise fail inside Trainer)
    with pytest.raises(ValueError, match=r"checkpoint-20 is an FSDP sharded checkpoint \(2 processes\)"):
        pretrain.main(tiny_args(corpus, copy, *RUN))

    # 2 -> 1 process under FSDP: torch.distributed.checkpoint redistributes the 2 shards onto 1 process
    one = run(
        accelerate_launch("fsdp.yaml", 1, 29632, LAUNCHER, tiny_args(corpus, copy, *RUN)),
        ACCELERATE_USE_CPU="true",
    )
    assert "was saved by 2 processes and this run has 1" in one
    start = resumed_from(one)
    single = json.loads((copy / "result-0.json").read_text())
    assert single["fsdp"] and single["world_size"] == 1 and single["local_rows"] == 300
    assert single["global_step"] == 60
    last = losses(pre_kill_history(copy / f"checkpoint-{start}"))[-1][1]
    first_resumed = losses(single["log_history"], after=start)[0][1]
    assert abs(first_resumed - last) < 0.3 < initial - last


@pytest.mark.slow
def test_ddp_two_process_checkpoint_resumes_with_one_process(tmp_path, caplog):
    """A 2-process DDP checkpoint (rng_state_0/1.pth) resumes with 1 process: weights, optimizer and step go
    on, with a warning that the global batch and data order changed."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "ddp"
    args = tiny_args(corpus, out, "--max_steps", "24", "--save_steps", "12", "--eval_steps", "24")
    args += ["--logging_steps", "2"]
    cmd = accelerate_launch("cpu.yaml", 2, 29633, REPO / "recipes" / "pretrain.py", args)
    run(cmd)
    ckpt = out / "checkpoint-12"
    assert (ckpt / "rng_state_0.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()
    shutil.rmtree(out / "checkpoint-24")  # as if the 2-process run had stopped after checkpoint-12
    caplog.set_level(logging.INFO)
    trainer = pretrain.main(args)  # 1 process, here in pytest
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.endswith("resuming from " + str(ckpt)) for m in messages)
    assert any("checkpoint-12 was saved by 2 processes and this run has 1" in m for m in messages)
    assert trainer.state.global_step == 24 and trainer.args.world_size == 1
    before = losses(pre_kill_history(ckpt))
    after = losses(trainer.state.log_history, after=12)
    assert after[0][0] == 14
    assert abs(after[0][1] - before[-1][1]) < 0.3 < before[0][1] - before[-1][1]


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["llama", "nanochat"])
def test_fsdp2_shards_a_modern_architecture_and_continues_it(tmp_path, architecture):
    """FSDP2 (GPTBlock units) trains a rope model on 2 processes; continuing it under FSDP, where
    fsdp_cpu_ram_efficient_loading loads the weights on rank 0 only, starts at its loss: the rotary buffers
    (not saved) are rebuilt on every rank."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    shape = ["--architecture", architecture, "--n_heads", "4", "--logging_steps", "1"]
    first = tiny_args(corpus, tmp_path / "first", "--max_steps", "20", "--save_steps", "20", *shape)
    run(accelerate_launch("fsdp.yaml", 2, 29634, LAUNCHER, first))
    trained = json.loads((tmp_path / "first" / "result-0.json").read_text())
    assert trained["fsdp"] and trained["sharded_param"] and trained["global_step"] == 20
    last = losses(trained["log_history"])[-1][1]
    assert last < losses(trained["log_history"])[0][1] - 0.5

    more = ["--model_name_or_path", str(tmp_path / "first"), "--max_steps", "2", "--learning_rate", "1e-5"]
    run(
        accelerate_launch(
            "fsdp.yaml", 2, 29635, LAUNCHER, tiny_args(corpus, tmp_path / "more", *more, *shape)
        )
    )
    continued = json.loads((tmp_path / "more" / "result-0.json").read_text())
    assert continued["fsdp"] and abs(losses(continued["log_history"])[0][1] - last) < 0.2
