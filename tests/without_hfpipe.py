"""Python where hfpipe cannot be imported, as for a user who has only the saved model files: the tests of
loading as remote code (``trust_remote_code=True``) run their code through :func:`run_without_hfpipe`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# prepended to the child's code: the checkout off sys.path, the editable install's finder gone
HIDE_HFPIPE = (
    "import importlib.util, os, sys\n"
    f"sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != {str(REPO)!r}]\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable___hfpipe' not in getattr(f, '__module__', '')]\n"
    "assert importlib.util.find_spec('hfpipe') is None, 'hfpipe is still importable'\n"
)


def run_without_hfpipe(code: str, *args, cwd: Path, env: dict | None = None, timeout: int = 300):
    """Run ``code`` (with ``sys.argv[1:] == args``) in a new Python that cannot import hfpipe, offline, with its
    own modules cache; returns the completed process."""
    env = {**os.environ, "HF_MODULES_CACHE": str(Path(cwd) / "modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": "",
           "OMP_NUM_THREADS": "1", **(env or {})}  # fmt: skip
    return subprocess.run([sys.executable, "-c", HIDE_HFPIPE + code, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
