import subprocess
import sys
from pathlib import Path

from hfpipe.tokenization import build_char_tokenizer

from ..conftest import import_script
from ..export.conftest import TEXT, tiny_causal_lm

REPO = Path(__file__).resolve().parents[2]
export_recipe = import_script("recipes/export_gguf.py", "export_gguf_recipe")


def test_export_recipe_writes_a_checked_file(tmp_path, capsys):
    from hfpipe.tokenization import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer([TEXT], vocab_size=320)
    tiny_causal_lm(tokenizer, train_steps=0).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    path = export_recipe.main(
        ["--model_name_or_path", str(tmp_path / "model"), "--output_file", str(tmp_path / "m.gguf")]
    )
    assert path.is_file() and "every tensor matches" in capsys.readouterr().out


def test_char_level_model_is_refused_with_one_line(tmp_path):
    tokenizer = build_char_tokenizer(TEXT)
    tiny_causal_lm(tokenizer, train_steps=0).save_pretrained(tmp_path / "char")
    tokenizer.save_pretrained(tmp_path / "char")
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "export_gguf.py"), "--model_name_or_path", str(tmp_path / "char"),
         "--output_file", str(tmp_path / "char.gguf")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: GGUF export needs a byte-level BPE tokenizer" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "char.gguf").exists()
