"""Writing outputs so that nothing half-written ever looks complete: write to a temp name, then rename."""

from __future__ import annotations

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
