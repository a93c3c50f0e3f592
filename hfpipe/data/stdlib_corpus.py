"""The embedded default corpus: docstrings of the Python standard library on this machine.

Every Python install carries a few MB of English prose in its standard library's docstrings, so the
quickstart can pretrain with no network and no downloaded data. The corpus is extracted with ``ast``
(nothing is imported or executed), one document per module/class/function docstring, and cached.
"""

from __future__ import annotations

import ast
import logging
import os
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)

# Test suites and tool internals are code-heavy; leave them out.
_SKIP_DIRS = {
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "site-packages",
    "__pycache__",
    "ensurepip",
    "turtledemo",
}


def _docstrings(source: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old modules
        tree = ast.parse(source)
    nodes = [tree] + [
        n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    for node in nodes:
        doc = ast.get_docstring(node, clean=True)
        if doc and len(doc) >= 40:
            yield doc


def iter_stdlib_docstrings(stdlib_dir: str | None = None):
    """Yield the docstrings (at least 40 characters) of the standard library's ``.py`` files, in a fixed order."""
    root = Path(stdlib_dir or sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if _SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]) or path.name.startswith("test_"):
            continue
        try:
            yield from _docstrings(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue


def stdlib_corpus_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Write (once) and return a JSON-lines file of stdlib docstrings, one ``{"text": ...}`` per line."""
    import json

    cache = Path(cache_dir or os.environ.get("HFPIPE_CACHE", Path.home() / ".cache" / "hfpipe"))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    path = cache / f"stdlib-docstrings-py{version}.jsonl"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=cache)
    count = chars = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for doc in iter_stdlib_docstrings():
                fh.write(json.dumps({"text": doc}) + "\n")
                count, chars = count + 1, chars + len(doc)
        if not count:
            raise RuntimeError("found no standard-library docstrings to build the default corpus from")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info(
        "built the default corpus: %s docstrings, %s characters -> %s", f"{count:,}", f"{chars:,}", path
    )
    return path
