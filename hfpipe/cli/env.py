"""What a bug report needs: hfpipe's version, its stack's, the optional extras', Python, the machine, bf16.

    hfpipe env

Like ``transformers env`` and ``accelerate env``: paste its output into the report.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
from importlib import metadata

from hfpipe.hardware import FAST_BF16_ENV

ARGUMENTS = ()


def extras() -> dict[str, dict[str, str | None]]:
    """Per optional extra of hfpipe (``pip install 'hfpipe[eval]'``): its packages and their installed versions
    (None: not installed). The ``test`` extra, which only gathers the others, is left out."""
    found: dict[str, dict[str, str | None]] = {}
    for requirement in metadata.requires("hfpipe") or []:
        extra = re.search(r"""extra\s*==\s*["']([\w-]+)["']""", requirement)
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        if not extra or extra.group(1) == "test" or name == "hfpipe":
            continue
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = None
        found.setdefault(extra.group(1), {})[name] = version
    return found


def bf16_line(machine: dict) -> str:
    """Whether bf16 is on by default here, and why."""
    import torch

    forced = os.environ.get(FAST_BF16_ENV, "").strip()
    if forced:
        why = f"{FAST_BF16_ENV}={forced}"
    elif machine["gpus"]:
        why = "GPU"
    elif torch.cpu._is_amx_tile_supported():
        why = "CPU with AMX"
    elif torch.cpu._is_avx512_bf16_supported():
        why = "CPU with AVX512-BF16"
    else:
        why = "CPU without AVX512-BF16 or AMX"
    if machine["native_bf16"]:
        return f"native ({why}): on by default"
    return f"not native ({why}; emulated ~4x slower than fp32): off by default, --bf16 true forces it"


def environment() -> str:
    """The lines ``hfpipe env`` prints."""
    import torch

    from hfpipe.report import hardware, versions

    machine = hardware()
    found = versions()
    lines = [f"- hfpipe: {found.pop('hfpipe')}"]
    lines += [f"- {name}: {version}" for name, version in found.items()]
    lines += [
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
        f"- platform: {platform.platform()}",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores, torch uses {torch.get_num_threads()} threads",
        f"- GPU: {', '.join(machine['gpus']) or 'none'}"
        + (f" (CUDA {torch.version.cuda})" if machine["gpus"] and torch.version.cuda else ""),
        f"- bf16: {bf16_line(machine)}",
    ]
    for extra, packages in extras().items():
        installed = [f"{name} {version}" for name, version in packages.items() if version]
        missing = [name for name, version in packages.items() if not version]
        state = ", ".join(installed + [f"{name} not installed" for name in missing])
        lines.append(f"- extra [{extra}]: {state}")
    return "\n".join(lines)


def main(args: list[str] | None = None) -> str:
    """Print the environment; returns the printed text."""
    parser = argparse.ArgumentParser(
        prog="hfpipe env",
        description="Print hfpipe's version, its libraries', the hardware and bf16 support.",
    )
    unknown = parser.parse_known_args(list(args or []))[1]
    if unknown:
        raise ValueError(f"hfpipe env takes no settings, got {' '.join(unknown)}")
    text = environment()
    print(text)
    return text
