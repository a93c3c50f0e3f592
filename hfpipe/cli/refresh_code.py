"""Replace the model code saved beside an hfpipe model with this hfpipe's (weights and config untouched).

    hfpipe refresh_code outputs/quickstart

A model saved by hfpipe before 0.2 carries model code that, loaded with ``trust_remote_code=True`` where hfpipe
is not installed, generates wrong text on transformers 5.24 and later (its KV cache argument was renamed).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from hfpipe.loading import refresh_code
from hfpipe.recipe_args import parse_recipe_args


@dataclass
class RefreshArguments:
    """The model directories to refresh."""

    model_dirs: list[str] = field(default_factory=list, metadata={"help": "hfpipe model directories"})


ARGUMENTS = (RefreshArguments,)


def main(args: list[str] | None = None) -> dict[str, list[str]]:
    """Refresh each directory; returns ``{dir: the files replaced}``."""
    args = list(sys.argv[1:] if args is None else args)
    if args and not args[0].startswith("-"):  # `hfpipe refresh_code DIR ...`: the directories as they are
        args = ["--model_dirs", *args]
    (cfg,) = parse_recipe_args(ARGUMENTS, args)
    if not cfg.model_dirs:
        raise ValueError("name the model directories to refresh: hfpipe refresh_code outputs/quickstart")
    done = {}
    for model_dir in cfg.model_dirs:
        done[model_dir] = refresh_code(model_dir)
        print(
            f"{model_dir}: "
            + (f"replaced {', '.join(done[model_dir])}" if done[model_dir] else "already current")
        )
    return done
