"""recipes/pretrain.py end to end: training, outputs, resume after SIGKILL, bad input."""

import json
import logging
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "pretrain.py"

from hfpipe.cli import pretrain  # noqa: E402
from hfpipe.training.callbacks import NonFiniteLossError  # noqa: E402
from hfpipe.training.checkpoints import CheckpointError  # noqa: E402

WORDS = "the a cat dog sat ran on under mat log big small red blue one two three and then".split()


def write_corpus(path: Path, n_docs: int = 300, seed: int = 0) -> Path:
    """A small synthetic corpus with learnable structure (repeated sentence templates)."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(n_docs):
            sentences = [
                f"the {rng.choice(WORDS)} {rng.choice(['cat', 'dog'])} sat on the {rng.choice(['mat', 'log'])}."
                for _ in range(rng.randint(2, 5))
            ]
            fh.write(json.dumps({"text": f"story {i}: " + " ".join(sentences)}) + "\n")
    return path


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.jsonl")


def tiny_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset_name",
        str(corpus),
        "--output_dir",
        str(out),
        "--vocab_size",
        "300",
        "--model_preset",
        "tiny",
        "--context_length",
        "32",
        "--emb_dim",
        "32",
        "--n_layers",
        "2",
        "--n_heads",
        "2",
        "--block_size",
        "32",
        "--per_device_train_batch_size",
        "8",
        "--per_device_eval_batch_size",
        "16",
        "--max_steps",
        "24",
        "--learning_rate",
        "3e-3",
        "--warmup_steps",
        "2",
        "--logging_steps",
        "4",
        "--eval_steps",
        "12",
        "--save_steps",
        "12",
        "--report_to",
        "none",
        "--peak_tflops",
        "1",
        "--sample_max_new_tokens",
        "8",
        "--sample_prompt",
        "the cat",
        "--disable_tqdm",
        "true",
        "--seed",
        "7",
        "--dataloader_num_workers",
        "0",
        *extra,
    ]


def test_pretrain_end_to_end(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    trainer = pretrain.main(tiny_args(corpus, out))
    printed = capsys.readouterr().out
    for name in (
        "model.safetensors",
        "config.json",
        "modeling_gpt.py",
        "configuration_gpt.py",
        "tokenizer.json",
        "loss.png",
        "README.md",
        "results.json",
        "trainer_state.json",
    ):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_gpt.GPTForCausalLM"
    results = json.loads((out / "results.json").read_text())
    assert results["stage"] == "pretrain" and results["model"] == str(out)
    metrics = results["metrics"]
    assert metrics["eval_loss"] < math.log(300) - 1.0  # learned well beyond a uniform guess
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]), rel=1e-6)
    logged = trainer.state.log_history
    assert any("tokens_per_second" in h and "mfu" in h for h in logged)
    assert [h["tokens_seen"] for h in logged if "tokens_seen" in h][-1] == 24 * 8 * 32
    assert f"model saved to {out.resolve()}" in printed and "AutoModelForCausalLM.from_pretrained" in printed
    assert "sample: the cat" in printed

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.pad_token_id != tok.eos_token_id
    ids = tok("the cat sat on the", return_tensors="pt")
    torch.testing.assert_close(model(**ids).logits, trainer.model.eval()(**ids).logits)


@pytest.mark.parametrize("architecture", ["llama", "nanochat"])
def test_pretrain_a_modern_architecture(corpus, tmp_path, architecture):
    """``architecture:`` beside ``model_preset``: the run learns, saves the layout and reloads the same model."""
    out = tmp_path / "run"
    trainer = pretrain.main(tiny_args(corpus, out, "--architecture", architecture, "--n_heads", "4"))
    config = json.loads((out / "config.json").read_text())
    assert (config["position"], config["norm"]) == ("rope", "rmsnorm")
    assert config["n_kv_heads"] == {"llama": 2, "nanochat": 1}[architecture]
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["eval_loss"] < math.log(300) - 1.0
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = AutoTokenizer.from_pretrained(out)("the cat sat on the", return_tensors="pt")
    torch.testing.assert_close(model(**ids).logits, trainer.model.eval()(**ids).logits)


def test_yaml_then_cli_precedence_and_unknown_key(corpus, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("emb_dim: 48\nn_heads: 3\nlearning_rate: 0.01\n")
    _, _, model_args, _, _, train_args = pretrain.parse_recipe_args(
        pretrain.ARGUMENTS, ["--config", str(cfg), "--output_dir", str(tmp_path), "--learning_rate", "0.002"]
    )
    assert model_args.emb_dim == 48 and model_args.n_heads == 3
    assert train_args.learning_rate == 0.002  # CLI beats YAML
    assert model_args.n_layers is None  # default kept
    cfg.write_text("emb_dims: 48\n")
    with pytest.raises(ValueError, match="emb_dims.*did you mean 'emb_dim'"):
        pretrain.main(["--config", str(cfg), "--output_dir", str(tmp_path)])


def _final_loss(out: Path) -> float:
    return json.loads((out / "results.json").read_text())["metrics"]["eval_loss"]


def test_resume_after_sigkill_matches_uninterrupted_run(kill_when_ready, corpus, tmp_path, caplog):
    args = ["--max_steps", "40", "--save_steps", "10", "--eval_steps", "40", "--save_total_limit", "5"]
    straight = tmp_path / "straight"
    pretrain.main(tiny_args(corpus, straight, *args))

    killed = tmp_path / "killed"
    cmd = [sys.executable, str(RECIPE), *tiny_args(corpus, killed, *args)]
    kill_when_ready(cmd, killed / "checkpoint-20" / "trainer_state.json")
    assert not (killed / "model.safetensors").exists()  # it really died mid-run

    caplog.set_level(logging.INFO, logger="hfpipe.training.run")
    trainer = pretrain.main(tiny_args(corpus, killed, *args))  # resumes on its own
    assert trainer.state.global_step == 40
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming from")]
    assert resumed and resumed[0].endswith(("checkpoint-20", "checkpoint-30"))  # it did not start over
    assert _final_loss(killed) == pytest.approx(_final_loss(straight), abs=1e-5)
    a, b = load_file(killed / "model.safetensors"), load_file(straight / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_incomplete_checkpoint_is_skipped_and_corrupt_one_is_an_error(corpus, tmp_path):
    out = tmp_path / "run"
    pretrain.main(tiny_args(corpus, out, "--max_steps", "12", "--save_steps", "6", "--eval_steps", "12"))
    # A save interrupted by a crash or a full disk: no trainer_state.json, or a truncated one.
    half = out / "checkpoint-999"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\0" * 10)
    (half / "trainer_state.json").write_text('{"global_step": 9')
    trainer = pretrain.main(
        tiny_args(corpus, out, "--max_steps", "18", "--save_steps", "6", "--eval_steps", "18")
    )
    assert trainer.state.global_step == 18
    assert (out / "checkpoint-999.incomplete").is_dir()
    # A checkpoint that claims to be complete but whose weights are damaged.
    last = out / "checkpoint-18"
    data = (last / "model.safetensors").read_bytes()
    (last / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checkpoint-18 is corrupt"):
        pretrain.main(tiny_args(corpus, out, "--max_steps", "24"))


def test_other_models_checkpoint_in_output_dir_is_an_error(corpus, tmp_path):
    out = tmp_path / "run"
    pretrain.main(tiny_args(corpus, out, "--max_steps", "6", "--save_steps", "6", "--eval_steps", "6"))
    with pytest.raises(CheckpointError, match="other settings.*emb_dim: 32 then, 64 now"):
        pretrain.main(tiny_args(corpus, out, "--emb_dim", "64", "--max_steps", "12"))
    # the settings record was lost (e.g. an older run): the architecture check still refuses it
    (out / "hfpipe_run.json").unlink()
    (out / "config.json").unlink()
    (out / "model.safetensors").unlink()
    (out / "README.md").unlink()
    with pytest.raises(CheckpointError, match="files of another run"):
        pretrain.main(tiny_args(corpus, out, "--emb_dim", "64", "--max_steps", "12"))


def test_finished_model_in_output_dir_is_refused_unless_overwrite(corpus, tmp_path):
    out = tmp_path / "run"
    (out / "old").mkdir(parents=True)
    (out / "config.json").write_text("{}")
    (out / "results.json").write_text('{"model": "old", "metrics": {"eval_loss": 0.1}}')
    with pytest.raises(CheckpointError, match="already holds a finished model.*overwrite_output_dir"):
        pretrain.main(tiny_args(corpus, out, "--max_steps", "4"))
    pretrain.main(
        tiny_args(corpus, out, "--max_steps", "4", "--eval_steps", "4", "--overwrite_output_dir", "true")
    )
    assert not (out / "old").exists()  # nothing of the earlier run is left beside the new weights
    assert json.loads((out / "results.json").read_text())["metrics"]["eval_loss"] > 0.5


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(corpus, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="training loss became NaN or infinite"):
        pretrain.main(
            tiny_args(
                corpus,
                out,
                "--learning_rate",
                "1e12",
                "--max_grad_norm",
                "0",
                "--warmup_steps",
                "0",
                "--save_steps",
                "1",
                "--max_steps",
                "30",
            )
        )
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints, "the checkpoints before the NaN must be kept"
    state = load_file(checkpoints[-1] / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in state.values())


def test_dataset_too_small_and_empty_validation_are_errors(tmp_path):
    small = write_corpus(tmp_path / "small.jsonl", n_docs=3)
    with pytest.raises(ValueError, match="fewer than one batch|too few"):
        pretrain.main(tiny_args(small, tmp_path / "a", "--per_device_train_batch_size", "64"))
    corpus = write_corpus(tmp_path / "c.jsonl")
    with pytest.raises(ValueError, match="validation set has 0 blocks"):
        pretrain.main(tiny_args(corpus, tmp_path / "b", "--validation_size", "0"))


def test_continual_pretraining_from_gpt2_checkpoint(corpus, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from hfpipe.tokenization import train_bpe_tokenizer

    texts = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    tok = train_bpe_tokenizer(texts, vocab_size=300)
    gpt2_dir = tmp_path / "gpt2"
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=2, n_head=2)
    ).save_pretrained(gpt2_dir)
    tok.save_pretrained(gpt2_dir)
    out = tmp_path / "continued"
    trainer = pretrain.main(
        tiny_args(corpus, out, "--model_name_or_path", str(gpt2_dir), "--max_steps", "12")
    )
    assert trainer.model.config.model_type == "hfpipe_gpt" and trainer.model.config.qkv_bias
    assert json.loads((out / "results.json").read_text())["metrics"]["eval_loss"] < math.log(len(tok))


def test_fsdp_on_a_cpu_only_launch_is_refused(monkeypatch, tmp_path):
    """accelerate drops FSDP on CPU devices and would silently run DDP: say so instead."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="fsdp needs GPUs"):
        pretrain.PretrainConfig(output_dir=str(tmp_path), fsdp="full_shard auto_wrap")


def test_two_process_cpu_launch_trains_the_same_model_on_both_ranks(corpus, tmp_path):
    """accelerate launch with accelerate_configs/cpu.yaml: DDP over 2 gloo ranks trains identical replicas.

    In the llama layout (rope, GQA, swiglu, no biases): DDP wraps any layout alike; the book's runs in the
    FSDP test (test_pretrain_fsdp.py)."""
    out = tmp_path / "ddp"
    script = tmp_path / "launch_and_digest.py"
    script.write_text(
        "import hashlib, os, sys\n"
        f"sys.path.insert(0, {str(REPO / 'recipes')!r})\n"
        "import pretrain\n"
        "trainer = pretrain.main(sys.argv[1:])\n"
        "h = hashlib.sha256()\n"
        "for k, v in sorted(trainer.model.state_dict().items()):\n"
        "    h.update(k.encode()); h.update(v.detach().cpu().numpy().tobytes())\n"
        "rank = os.environ['RANK']\n"
        "open(os.path.join(sys.argv[sys.argv.index('--output_dir') + 1], f'digest-{rank}.txt'), 'w').write(\n"
        "    f'{trainer.args.world_size} {trainer.state.global_step} {trainer.args.bf16} {h.hexdigest()}')\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "accelerate_configs" / "cpu.yaml"),
        "--main_process_port",
        "29517",
        str(script),
        *tiny_args(corpus, out, "--max_steps", "8", "--eval_steps", "8", "--save_steps", "8"),
        *("--architecture", "llama", "--n_heads", "4"),
    ]
    # the bf16 branch, as on a CPU with AVX512-BF16/AMX: auto bf16 must come with use_cpu on every rank
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HFPIPE_FAST_BF16": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    d0, d1 = (out / "digest-0.txt").read_text().split(), (out / "digest-1.txt").read_text().split()
    assert d0[:3] == ["2", "8", "True"]  # 2 ranks, 8 steps, bf16
    assert d0 == d1  # every rank holds the same trained weights
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    assert all(torch.isfinite(p).all() for p in reloaded.parameters())


@pytest.mark.parametrize("fast", [True, False], ids=["cpu-with-bf16", "cpu-without-bf16"])
def test_auto_bf16_follows_the_hardware_and_trains(corpus, tmp_path, monkeypatch, fast):
    """Both answers of the capability check, on any machine: a real short bf16 (or fp32) run on the CPU."""
    import hfpipe.hardware

    monkeypatch.delenv("HFPIPE_FAST_BF16", raising=False)
    monkeypatch.setattr(hfpipe.hardware, "cpu_has_fast_bf16", lambda: fast)
    out = tmp_path / "run"
    trainer = pretrain.main(
        tiny_args(corpus, out, "--max_steps", "8", "--eval_steps", "8", "--save_steps", "8")
    )
    assert trainer.args.bf16 is fast and trainer.args.use_cpu
    assert trainer.accelerator.mixed_precision == ("bf16" if fast else "no")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]


def test_forced_bf16_on_a_slow_cpu_warns_once_and_bad_precision_is_refused(corpus, tmp_path, monkeypatch):
    import hfpipe.hardware
    from hfpipe.recipe_args import ConfigError

    monkeypatch.setattr(hfpipe.hardware, "fast_bf16_available", lambda: False)
    with pytest.warns(UserWarning, match="4x slower") as record:
        _, _, _, _, _, train_args = pretrain.parse_recipe_args(
            pretrain.ARGUMENTS, ["--output_dir", str(tmp_path / "o"), "--bf16", "true"]
        )
    assert train_args.bf16 and train_args.use_cpu and len(record) == 1
    with pytest.raises(ConfigError, match="bf16 and fp16 are both set"):
        pretrain.parse_recipe_args(
            pretrain.ARGUMENTS, ["--output_dir", "o", "--bf16", "true", "--fp16", "true"]
        )
    with pytest.raises(ConfigError, match="fp16 mixed precision needs a GPU"):
        pretrain.parse_recipe_args(pretrain.ARGUMENTS, ["--output_dir", "o", "--fp16", "true"])
