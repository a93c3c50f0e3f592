"""The whole chain on tiny data: pretrain -> SFT -> DPO -> evaluate -> int8 -> GGUF, killed with SIGKILL during
SFT and run again: the finished stage is skipped, SFT resumes from its checkpoint, and the report's figures equal
those of an uninterrupted run with the same seed. (slow: three pipeline runs)"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hfpipe.pipeline import read_state

pytestmark = pytest.mark.slow
WORDS = "the a cat dog sat ran on under mat log big small red blue one two three and then".split()
COLOURS, THINGS = ["red", "blue", "green", "black", "white"], ["cat", "dog", "sky", "car", "hat"]


def write_data(root: Path) -> tuple[Path, Path]:
    """A text corpus, and the book's record shape (instruction, input, output, chosen, rejected)."""
    rng = random.Random(0)
    corpus = root / "corpus.jsonl"
    with corpus.open("w") as fh:
        for i in range(300):
            text = " ".join(f"the {rng.choice(WORDS)} {rng.choice(['cat', 'dog'])} is {rng.choice(COLOURS)}."
                            for _ in range(3))  # fmt: skip
            fh.write(json.dumps({"text": f"story {i}: {text}"}) + "\n")
    records = []
    for _ in range(60):
        colour, thing = rng.choice(COLOURS), rng.choice(THINGS)
        records.append({"instruction": "Name the colour.", "input": f"The {thing} is {colour}.",
                        "output": f"It is {colour}.", "chosen": f"It is {colour}. Thank you.",
                        "rejected": f"It is {colour}. Go away."})  # fmt: skip
    data = root / "records.json"
    data.write_text(json.dumps(records))
    return corpus, data


def write_pipeline(root: Path, out: Path, corpus: Path, data: Path) -> Path:
    tiny = {"report_to": "none", "per_device_eval_batch_size": 8}
    spec = {
        "output_dir": str(out), "seed": 3, "report_prompts": 2,
        "stages": {
            "pretrain": {**tiny, "dataset_name": str(corpus), "vocab_size": 320, "model_preset": "tiny",
                         "context_length": 320, "emb_dim": 32, "n_layers": 2, "n_heads": 2, "block_size": 64,
                         "per_device_train_batch_size": 8, "max_steps": 20, "eval_steps": 20, "save_steps": 10,
                         "logging_steps": 5, "sample_max_new_tokens": 4},
            "sft": {**tiny, "dataset_name": str(data), "max_steps": 12, "save_strategy": "steps", "save_steps": 2,
                    "logging_steps": 2, "eval_strategy": "no", "eval_on_start": False, "learning_rate": 1e-3,
                    "per_device_train_batch_size": 4, "test_answers": 4, "answer_max_new_tokens": 8},
            "dpo": {**tiny, "dataset_name": str(data), "max_steps": 4, "save_strategy": "no", "logging_steps": 2,
                    "eval_strategy": "no", "learning_rate": 1e-3, "per_device_train_batch_size": 4,
                    "test_answers": 2, "answer_max_new_tokens": 8, "max_length": 320},
            "evaluate": {"eval_batch_size": 4, "max_eval_documents": 6},
            "quantize": {"max_eval_blocks": 2, "max_new_tokens": 4},
            "export_gguf": {},
        },
    }  # fmt: skip
    path = root / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def command(config: Path) -> list[str]:
    return [sys.executable, "-m", "hfpipe", "pipeline", "--config", str(config)]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def figures(out: Path) -> dict:
    """The report's numbers that training decides (not wall times)."""
    report = json.loads((out / "report.json").read_text())
    return {
        "evaluation": {r["stage"]: r["metrics"] for r in report["evaluation"]["rows"]},
        "quality": {
            (q["figure"], q["stage"]): q["value"] for q in report["quality"] if "size" not in q["figure"]
        },
        "tokens": {s["stage"]: s["tokens"] for s in report["stages"]},
        "answers": report["answers"],
    }


def test_killed_during_sft_resumes_and_reports_what_an_uninterrupted_run_reports(tmp_path):
    corpus, data = write_data(tmp_path)
    straight = tmp_path / "straight"
    done = subprocess.run(command(write_pipeline(tmp_path, straight, corpus, data)), cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    config = write_pipeline(tmp_path, killed, corpus, data)
    proc = subprocess.Popen(command(config), cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.time() + 900
    while not (killed / "sft" / "checkpoint-4" / "trainer_state.json").is_file():
        assert proc.poll() is None, "the pipeline ended before it could be killed"
        assert time.time() < deadline, "SFT wrote no checkpoint-4 within 900 s"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = read_state(killed)
    assert state["stages"]["pretrain"]["status"] == "done" and state["stages"]["sft"]["status"] == "running"
    assert not (killed / "sft" / "model.safetensors").exists()
    pretrained = (killed / "pretrain" / "model.safetensors").stat().st_mtime

    again = subprocess.run(
        command(config), cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=1800
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "pretrain         skip" in again.stdout
    assert "sft              resume  interrupted: resumes from checkpoint-" in again.stdout
    assert "resuming from" in again.stdout + again.stderr
    assert (killed / "pretrain" / "model.safetensors").stat().st_mtime == pretrained
    assert all(r["status"] == "done" for r in read_state(killed)["stages"].values())
    sft_attempts = read_state(killed)["stages"]["sft"]["attempts"]
    assert [a["outcome"] for a in sft_attempts] == ["killed", "done"] and sft_attempts[0]["seconds"] > 0
    a, b = figures(straight), figures(killed)
    assert a["tokens"] == b["tokens"] and a["answers"] == b["answers"]
    for key in ("evaluation", "quality"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert a[key][name] == pytest.approx(b[key][name], rel=1e-4), (key, name)
    report = (killed / "report.md").read_text()
    assert "## Evaluation" in report and "## Held-out prompts" in report and "## Quality" in report
    assert "- sft took 2 attempts, each resuming the one before: killed after " in report
