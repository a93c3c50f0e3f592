"""The configs hfpipe ships, by name: any ``--config`` takes one (``--config quickstart``).

    hfpipe configs                     # each packaged config and what it is for
    hfpipe configs sft_alpaca          # print one
    hfpipe configs sft_alpaca > my.yaml && hfpipe sft --config my.yaml ...   # copy it, edit it, use it

A config's description is the first sentence of its opening comment.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from hfpipe.configs import ConfigError, describe, packaged_configs

ARGUMENTS = ()  # not a recipe: a name, or nothing


def listing() -> str:
    """One line per packaged config: its name and the first sentence of its opening comment."""
    shipped = packaged_configs()
    width = max(map(len, shipped))
    lines = [f"  {name:<{width}}  {textwrap.shorten(describe(path), 124 - width, placeholder=' ...')}"
             for name, path in shipped.items()]  # fmt: skip
    return "packaged configs (`hfpipe configs NAME` prints one):\n" + "\n".join(lines)


def main(args: list[str] | None = None) -> str:
    """Print the list of packaged configs, or the config named; returns what it printed."""
    parser = argparse.ArgumentParser(prog="hfpipe configs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("name", nargs="?", help="a packaged config, with or without .yaml")
    parser.error = lambda message: (_ for _ in ()).throw(ConfigError(f"{message} (hfpipe configs --help)"))
    name = parser.parse_args(sys.argv[1:] if args is None else args).name
    if name is None:
        text = listing()
    else:
        shipped = packaged_configs()
        stem = name.removesuffix(".yaml")
        if stem not in shipped:
            raise ConfigError(f"hfpipe ships no config {name!r}; its configs: {', '.join(shipped)}")
        text = shipped[stem].read_text()
    print(text, end="" if text.endswith("\n") else "\n")
    return text
