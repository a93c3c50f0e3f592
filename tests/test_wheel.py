"""hfpipe as a pip user gets it: the wheel installed in a fresh virtual environment (no checkout on any path),
run from a directory outside the checkout. ``hfpipe pipeline --config pipeline_cpu`` finds the packaged pipeline
and its packaged stage configs, and a short variant of the CPU chain runs to its report. (slow: it installs
hfpipe's dependencies into a new environment, then trains)"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
WORDS = "the a cat dog sat ran on under mat log big small red blue one two three and then".split()
COLOURS = ["red", "blue", "green", "black", "white"]


def write_data(root: Path) -> tuple[Path, Path]:
    """A small text corpus, and records of the book's shape (instruction, input, output, chosen, rejected)."""
    rng = random.Random(0)
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": " ".join(f"the {rng.choice(WORDS)} cat is {rng.choice(COLOURS)}."
                                                              for _ in range(4))}) + "\n" for _ in range(200)))  # fmt: skip
    records = [{"instruction": "Name the colour.", "input": f"The cat is {c}.", "output": f"It is {c}.",
                "chosen": f"It is {c}. Thank you.", "rejected": f"It is {c}. Go away."}
               for c in (rng.choice(COLOURS) for _ in range(40))]  # fmt: skip
    data = root / "records.json"
    data.write_text(json.dumps(records))
    return corpus, data


def short_chain(corpus: Path, data: Path) -> list[str]:
    """pipeline_cpu's command-line overrides that make every stage tiny and short."""
    tiny = {"report_to": "none", "logging_steps": 2, "per_device_train_batch_size": 4}
    answers = {"test_answers": 2, "answer_max_new_tokens": 8}
    keys = {
        "output_dir": "out", "report_prompts": 2, "instruction_data": data, "preference_data": data,
        **{f"pretrain.{k}": v for k, v in {**tiny, "dataset_name": corpus, "vocab_size": 320, "emb_dim": 32,
                                            "n_layers": 2, "n_heads": 2, "block_size": 64, "stride": 64,
                                            "max_steps": 6, "eval_steps": 6, "save_steps": 6, "max_eval_samples": 8,
                                            "sample_max_new_tokens": 4}.items()},
        **{f"sft.{k}": v for k, v in {**tiny, **answers, "max_steps": 4}.items()},
        **{f"dpo.{k}": v for k, v in {**tiny, **answers, "max_steps": 2, "max_length": 256}.items()},
        "evaluate.eval_batch_size": 4, "evaluate.max_eval_documents": 6,
        "quantize.max_eval_blocks": 2, "quantize.max_new_tokens": 4,
    }  # fmt: skip
    return [word for key, value in keys.items() for word in (f"--{key}", str(value))]


def test_the_wheel_in_a_fresh_venv_runs_the_cpu_pipeline_to_its_report(hfpipe_wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, timeout=1800)
    subprocess.run([*pip, f"hfpipe[eval,quantize,gguf] @ {hfpipe_wheel.as_uri()}"], check=True, timeout=3600)
    work = tmp_path / "work"  # outside the checkout, with nothing of it on any path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    where = subprocess.run(["python", "-c", "import hfpipe; print(hfpipe.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.startswith(str(venv)), where.stdout
    corpus, data = write_data(work)
    proc = subprocess.run(["hfpipe", "pipeline", "--config", "pipeline_cpu", *short_chain(corpus, data)], cwd=work,
                          env=env, capture_output=True, text=True, timeout=3600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((work / "out" / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == [
        "pretrain",
        "sft",
        "dpo",
        "evaluate",
        "quantize",
        "export_gguf",
    ]
    assert (work / "out" / "report.md").is_file() and (work / "out" / "export_gguf" / "model.gguf").is_file()
