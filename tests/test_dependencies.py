"""Every third-party module the package, recipes, benchmarks and tests import is declared in pyproject.toml
(core, the right extra, or `test`), and every declared dependency is used: deptry checks both."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_imports_and_declared_dependencies_agree():
    # the interpreter's own scripts first: the venv may not be on PATH
    deptry = shutil.which("deptry", path=str(Path(sys.executable).parent)) or shutil.which("deptry")
    assert deptry, "deptry is in the test extra: pip install -e '.[test]'"
    # the repository's own scripts, imported by path from tests and benchmarks, are first-party too
    local = sorted(
        {p.stem for folder in ("recipes", "benchmarks", "tests") for p in (REPO / folder).rglob("*.py")}
    )
    first_party = [arg for name in ["hfpipe", *local] for arg in ("--known-first-party", name)]
    proc = subprocess.run([deptry, ".", *first_party], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
