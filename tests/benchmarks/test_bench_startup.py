"""bench_startup runs every command and writes its table; ``import hfpipe`` stays free of torch."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_startup  # noqa: E402


def test_import_hfpipe_imports_nothing_heavy_that_transformers_does_not():
    """torch, trl, peft, ... load on first use; only what ``import transformers`` itself imports may be there
    (transformers 5.0-5.2 import torch themselves)."""
    heavy = [
        "torch",
        "trl",
        "peft",
        "torchao",
        "lm_eval",
        "fastapi",
        "uvicorn",
        "gguf",
        "matplotlib",
        "datasets",
    ]
    code = f"import sys, {{}}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    loaded = {}
    for module in ("transformers", "hfpipe"):
        out = subprocess.run([sys.executable, "-c", code.format(module)], capture_output=True, text=True, check=True,
                             cwd=REPO)  # fmt: skip
        loaded[module] = set(eval(out.stdout))
    assert loaded["hfpipe"] <= loaded["transformers"], loaded


def test_benchmark_writes_its_table(tmp_path):
    text = bench_startup.main(
        ["--rounds", "1", "--output", str(tmp_path / "startup.md"), "--only", "hfpipe --help"]
    )
    assert (tmp_path / "startup.md").read_text() == text
    assert "ratio to `import transformers`" in text and "ratio to `trl sft --help`" in text
    assert (
        "| `hfpipe --help` |" in text
        and "| `trl sft --help` |" in text
        and "| `python -c 'import hfpipe'` |" not in text
    )
