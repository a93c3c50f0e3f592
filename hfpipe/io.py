"""Writing outputs so that nothing half-written ever looks complete: write to a temp name, then rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_dir(src: Path, dst: Path) -> None:
    """Move directory ``src`` to ``dst`` by renames, replacing an existing ``dst``."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_atomically(save_fn: Callable[[Path], None], output_dir: str | os.PathLike) -> Path:
    """Call ``save_fn(tmp_dir)`` on a temp dir beside ``output_dir``, then rename it to ``output_dir``.

    If ``save_fn`` fails (a crash, a full disk) the temp dir is removed and ``output_dir`` is untouched.
    """
    out = Path(output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        save_fn(tmp)
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_file_atomically(write_fn: Callable[[Path], None], path: str | os.PathLike) -> Path:
    """Call ``write_fn(tmp_path)`` on a temp file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # keeps the suffix: savefig needs it
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomically(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON to ``path`` through a temp file: a crash never leaves half a file."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    return write_file_atomically(lambda tmp: tmp.write_text(text, encoding="utf-8"), path)


def check_output_dir(path: str | os.PathLike, key: str = "output_dir") -> None:
    """ValueError naming ``path`` when it, or a folder it would be made in, is a file: it cannot be a directory."""
    path = Path(path).expanduser()
    for part in (path, *path.parents):
        if part.is_file():
            where = "is a file" if part == path else f"is inside {str(part)!r}, which is a file"
            raise ValueError(f"{key} {str(path)!r} {where}, not a directory; choose another {key}")
