import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import import_script
from ..export.conftest import TEXT, tiny_causal_lm

pytest.importorskip("torchao")
REPO = Path(__file__).resolve().parents[2]
quantize_recipe = import_script("recipes/quantize.py", "quantize_recipe")


def test_quantize_recipe_reports_size_perplexity_and_speed(tmp_path, capsys):
    from hfpipe.tokenization import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer([TEXT], vocab_size=320)
    tiny_causal_lm(tokenizer).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "heldout.txt").write_text(TEXT[:2000])
    path, rows = quantize_recipe.main([
        "--model_name_or_path", str(tmp_path / "model"), "--output_dir", str(tmp_path / "int8"),
        "--eval_file", str(tmp_path / "heldout.txt"), "--max_new_tokens", "16",
    ])  # fmt: skip
    assert rows["int8"]["bytes"] < 0.5 * rows["original"]["bytes"]
    assert rows["int8"]["perplexity"] == pytest.approx(rows["original"]["perplexity"], rel=0.02)
    assert rows["int8"]["tokens_per_second"] > 0
    assert "int8 / original" in capsys.readouterr().out


def test_quantize_recipe_user_error_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "quantize.py"), "--model_name_or_path", str(tmp_path / "nope"),
         "--output_dir", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "error: model" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
