"""recipes/sft.py end to end: hfpipe, GPT-2 and Llama start models, LoRA, packing, resume after SIGKILL, errors."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, OPTConfig, OPTForCausalLM

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "sft"))
from sft_fixtures import (  # noqa: E402
    alpaca_records,
    bpe_tokenizer,
    save_gpt2_model,
    save_hfpipe_model,
    save_llama_model,
    write_json,
)

from hfpipe.cli import sft  # noqa: E402
from hfpipe.data.instructions import ALPACA_CHAT_TEMPLATE, format_alpaca_prompt  # noqa: E402
from hfpipe.loading import load_model  # noqa: E402
from hfpipe.recipe_args import run_recipe  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_json(tmp_path_factory.mktemp("data") / "instructions.json", alpaca_records(80))


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    return save_hfpipe_model(tmp_path_factory.mktemp("start") / "gpt")


def args(model, data, out, *extra):
    return [
        "--config", str(REPO / "recipes/configs/sft_alpaca.yaml"),
        "--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out),
        "--max_steps", "40", "--learning_rate", "3e-3", "--warmup_steps", "2", "--eval_strategy", "steps",
        "--eval_steps", "20", "--save_steps", "20", "--logging_steps", "10", "--disable_tqdm", "true",
        "--answer_max_new_tokens", "12", *extra,
    ]  # fmt: skip


def test_sft_end_to_end(start, data, tmp_path, capsys, caplog):
    out = tmp_path / "sft"
    with caplog.at_level(logging.INFO, logger="hfpipe.evaluation.answers"):
        result = sft.main(args(start, data, out, "--test_answers", "6", "--per_device_eval_batch_size", "4"))
    printed = capsys.readouterr().out
    logged = [r.getMessage() for r in caplog.records if r.name == "hfpipe.evaluation.answers"]
    assert logged[0] == "test answers: 6 prompts, 4 at a time, up to 12 new tokens each"
    assert "about" in logged[1] and "for the 6 prompts" in logged[1]
    m = result.metrics
    assert m["eval_loss"] < m["eval_loss_before"] - 1.5  # learned the responses
    assert m["eos_share"] == 1.0 and m["template_leak_share"] == 0.0  # learned to stop
    answers = json.loads((out / "test_responses.json").read_text())
    assert len(answers) == 6 and {"instruction", "input", "reference", "response"} <= set(answers[0])
    assert "validation loss" in printed and "ended with eos 100.0 %" in printed
    summary = json.loads((out / "results.json").read_text())
    assert summary["stage"] == "sft" and summary["data_format"] == "alpaca"
    assert summary["metrics"]["test_answers"] == 6 and summary["metrics"]["eos_share"] == 1.0

    # the saved tokenizer carries the template training used: inference renders the same prompt
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == ALPACA_CHAT_TEMPLATE and tok.pad_token_id != tok.eos_token_id
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "Say red."}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == format_alpaca_prompt({"instruction": "Say red.", "input": ""})
    model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)
    ids = tok(rendered, return_tensors="pt")
    torch.testing.assert_close(model(**ids).logits, result.trainer.model.eval()(**ids).logits)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_other_start_models_with_pad_equal_eos(arch, data, tmp_path, caplog):
    start = (save_gpt2_model if arch == "gpt2" else save_llama_model)(tmp_path / arch)
    out = tmp_path / "sft"
    result = sft.main(
        args(start, data, out, "--max_steps", "3", "--eval_strategy", "no", "--test_answers", "2")
    )
    assert "adding a distinct '<|pad|>'" in caplog.text
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)
    expected = "GPTForCausalLM" if arch == "gpt2" else "LlamaForCausalLM"  # GPT-2 is converted; Llama is kept
    assert type(model).__name__ == expected == type(result.trainer.model).__name__
    assert tok.pad_token_id != tok.eos_token_id and model.get_input_embeddings().num_embeddings >= len(tok)
    assert len(json.loads((out / "test_responses.json").read_text())) == 2


def test_lora_adapter_and_merged_model(start, data, tmp_path):
    out = tmp_path / "lora"
    sft.main(args(start, data, out, "--use_peft", "true", "--save_merged", "true", "--max_steps", "4",
                  "--eval_strategy", "no", "--test_answers", "1"))  # fmt: skip
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == {"qkv", "out_proj", "fc1", "fc2"}
    peft_model = load_model(out)  # base + adapter
    merged = AutoModelForCausalLM.from_pretrained(out / "merged", trust_remote_code=True)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, peft_model.eval()(ids).logits, atol=1e-5, rtol=1e-4)


def test_packing_runs_or_is_refused(start, data, tmp_path):
    # hfpipe's GPT takes a padding-free row longer than its context (positions restart per example)
    result = sft.main(args(start, data, tmp_path / "packed", "--packing", "true", "--max_steps", "3",
                           "--eval_strategy", "no", "--test_answers", "0"))  # fmt: skip
    assert result.trainer.state.global_step == 3
    opt = tmp_path / "opt"
    OPTForCausalLM(OPTConfig(vocab_size=400, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
                             max_position_embeddings=128, word_embed_proj_dim=32)).save_pretrained(opt)  # fmt: skip
    bpe_tokenizer().save_pretrained(opt)
    with pytest.raises(ValueError, match="packing: true is refused.*attend to each other"):
        sft.main(args(opt, data, tmp_path / "opt-out", "--packing", "true", "--max_steps", "1"))


def test_user_error_is_one_line(tmp_path, start, capsys):
    bad = write_json(tmp_path / "qa.json", [{"question": "q", "answer": "a"}])
    with pytest.raises(SystemExit) as exit_info:
        run_recipe(lambda: sft.main(args(start, bad, tmp_path / "x")))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(r"^error: .*dataset_format alpaca needs the columns instruction, input", err, re.M)
    assert "Traceback" not in err


@pytest.mark.slow  # two fresh processes: ~1-2 min on 2 shared cores
def test_resume_after_sigkill(start, data, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, str(REPO / "recipes/sft.py"), *args(start, data, out, "--save_steps", "5",
           "--max_steps", "2000", "--eval_strategy", "no", "--test_answers", "0")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def saved() -> list[int]:  # steps of the complete checkpoints (save_total_limit removes older ones)
        return sorted(
            int(c.name.split("-")[1]) for c in out.glob("checkpoint-*") if (c / "trainer_state.json").exists()
        )

    try:
        deadline = time.time() + 240
        while not any(step >= 10 for step in saved()):
            assert proc.poll() is None and time.time() < deadline, (
                "the run ended before its second checkpoint"
            )
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    last = saved()[-1]
    assert last < 2000, "the run finished before it was killed"
    done = subprocess.run([*cmd[:-8], "--max_steps", str(last + 4), "--eval_strategy", "no", "--test_answers", "0"],
                          env=env, capture_output=True, text=True, timeout=400)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stdout and f"checkpoint-{last}" in done.stdout
    state = json.loads((out / f"checkpoint-{last + 4}" / "trainer_state.json").read_text())
    assert state["global_step"] == last + 4
    assert (out / "model.safetensors").is_file()
