"""Recipe configs: the ones hfpipe ships (``recipes/configs/``, installed as ``hfpipe.recipes``) and finding one
by name, so ``--config quickstart`` works from a checkout and from a ``pip install`` alike.

Light on purpose (no transformers): ``hfpipe configs`` and every recipe's argument parsing use it.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path


class ConfigError(ValueError):
    """A recipe configuration that cannot be used as given."""


def packaged_configs() -> dict[str, Path]:
    """The configs hfpipe ships: ``{name: path}``, the name being the file name without ``.yaml``."""
    folder = Path(str(files("hfpipe.recipes") / "configs"))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def describe(path: Path) -> str:
    """A config's one-line description: the first sentence of its opening comment."""
    prose = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        if not text or line.startswith("#  ") or re.match(r"(python|hfpipe|accelerate) ", text):
            break  # a command to run it, indented or not, ends the prose
        prose.append(text)
    sentences = re.split(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bch)\.(?:\s|$)", " ".join(prose), maxsplit=1)
    return sentences[0].rstrip(":") + "." if prose else ""


def resolve_config(name: str | Path, beside: str | Path | None = None, what: str = "config") -> Path:
    """The YAML file ``name`` means: a file of that name (``.yaml`` optional) in ``beside`` (default: the working
    directory), else, for a bare name, the packaged config of that name. A miss is a ``ConfigError`` that names
    what was looked for, where, and the packaged names."""
    given = Path(name)
    base = Path(beside) if beside is not None else Path.cwd()
    local = given if given.is_absolute() else base / given
    for candidate in (local, local.with_name(local.name + ".yaml")):
        if candidate.is_file():
            return candidate
    shipped = packaged_configs()
    stem = given.name.removesuffix(".yaml")
    bare = given.parent == Path(".")
    if bare and stem in shipped:
        return shipped[stem]
    names = local.name if local.suffix == ".yaml" else f"{local.name} or {local.name}.yaml"
    message = f"{what} {str(name)!r} not found: no {names} in {local.parent}"
    if bare:
        message += ", and hfpipe ships no config of that name"
    elif stem in shipped:
        message += f"; hfpipe ships one of that name: use {stem!r}"
    raise ConfigError(f"{message} (hfpipe's configs: {', '.join(shipped)}; `hfpipe configs` describes them)")
