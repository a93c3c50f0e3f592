import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from hfpipe.tokenization import train_bpe_tokenizer

from ..conftest import import_script
from ..export.conftest import TEXT, tiny_causal_lm

REPO = Path(__file__).resolve().parents[2]
distill_recipe = import_script("recipes/distill.py", "distill_recipe")


@pytest.fixture
def bpe_tokenizer():
    return train_bpe_tokenizer([TEXT], vocab_size=320)


def test_distill_recipe_trains_a_smaller_student_and_reports(tmp_path, bpe_tokenizer):
    teacher = tiny_causal_lm(bpe_tokenizer, train_steps=40, emb_dim=48, n_layers=2)
    teacher.save_pretrained(tmp_path / "teacher")
    bpe_tokenizer.save_pretrained(tmp_path / "teacher")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "student"
    trainer, rows = distill_recipe.main([
        "--teacher_model_name_or_path", str(tmp_path / "teacher"), "--dataset_name", str(corpus),
        "--emb_dim", "16", "--n_layers", "1", "--n_heads", "2", "--block_size", "32",
        "--max_steps", "40", "--learning_rate", "3e-3", "--per_device_train_batch_size", "8",
        "--eval_strategy", "no", "--save_strategy", "no", "--output_dir", str(out),
    ])  # fmt: skip
    student = AutoModelForCausalLM.from_pretrained(out)
    assert student.config.emb_dim == 16 and (out / "tokenizer.json").is_file()
    assert rows["student"]["parameters"] < rows["teacher"]["parameters"] / 2
    # far better than the uniform guess over the vocabulary: it learned
    assert rows["student"]["perplexity"] < len(bpe_tokenizer) / 2
    logged = [h for h in trainer.state.log_history if "kd_loss" in h]
    assert logged and logged[-1]["kd_loss"] < logged[0]["kd_loss"]
    assert "student / teacher" in (out / "distillation.md").read_text()


def test_distill_recipe_user_error_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "distill.py"), "--output_dir", str(tmp_path / "o"),
         "--dataset_name", "x.txt"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "error: teacher_model_name_or_path is not set" in proc.stderr
    assert "Traceback" not in proc.stderr
