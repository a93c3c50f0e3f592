"""The embedded default corpus: standard-library docstrings, extracted without importing anything."""

import json

from hfpipe.data.stdlib_corpus import iter_stdlib_docstrings, stdlib_corpus_path


def test_docstrings_are_extracted_without_running_code(tmp_path):
    lib = tmp_path / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "test").mkdir()
    (lib / "pkg" / "mod.py").write_text(
        '"""Module docstring that is long enough to be kept in the corpus."""\n'
        "raise SystemExit('importing this module would exit')\n"
        "def f():\n    '''Return the answer to everything, computed very carefully.'''\n"
        "def g():\n    'short'\n"
    )
    (lib / "test" / "test_x.py").write_text('"""A test module docstring that must be left out of it."""\n')
    (lib / "broken.py").write_text("def (:\n")
    docs = list(iter_stdlib_docstrings(str(lib)))
    assert docs == [
        "Module docstring that is long enough to be kept in the corpus.",
        "Return the answer to everything, computed very carefully.",
    ]


def test_corpus_file_is_built_once_and_reused(tmp_path):
    path = stdlib_corpus_path(tmp_path)
    lines = path.read_text().splitlines()
    assert len(lines) > 1000  # every CPython ships thousands of docstrings
    assert all(json.loads(line)["text"] for line in lines[:50])
    assert not list(tmp_path.glob("*.tmp"))  # written to a temp name, then renamed
    mtime = path.stat().st_mtime_ns
    assert stdlib_corpus_path(tmp_path) == path and path.stat().st_mtime_ns == mtime
