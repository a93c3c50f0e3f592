"""The transformers API that moved within 5.x, in one place: the KV cache's name and the supported floor.

transformers 5.24 renamed the KV cache ``past_key_values`` -> ``cache`` (forward arguments, model outputs,
``generate``'s inputs); the old name still works there, with a deprecation warning. hfpipe's callers pass and
read the cache through :func:`cache_kwargs` and :func:`output_cache`, which use this release's own name.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from importlib import metadata

from packaging.version import Version

logger = logging.getLogger(__name__)

# The oldest transformers release hfpipe supports (pyproject's floor; .ci/oldest.txt tests it). No upper
# bound lives in the code: CI tests the newest release on every run, and pyproject caps the major version.
TRANSFORMERS_FLOOR = "5.0.0"


def cache_name() -> str:
    """``cache`` from transformers 5.24, ``past_key_values`` before (the model file's own rule)."""
    from .models.gpt.modeling_gpt import CACHE_NAME

    return CACHE_NAME


def cache_kwargs(cache) -> dict:
    """The keyword argument that passes ``cache`` to a model's ``forward`` in this transformers release."""
    return {cache_name(): cache}


def output_cache(outputs):
    """The KV cache a model's output carries, read under this release's name (no deprecation warning)."""
    return getattr(outputs, cache_name(), None)


def transformers_version() -> str:
    """The installed transformers release, read without importing it (``import hfpipe`` stays light)."""
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:  # a source checkout on sys.path, without installed metadata
        import transformers

        return transformers.__version__


def warn_if_below_floor(version: str | None = None) -> bool:
    """Log one warning when ``version`` (default: the installed one) is older than hfpipe's floor; True when
    it warned."""
    version = version or transformers_version()
    if Version(Version(version).base_version) >= Version(TRANSFORMERS_FLOOR):
        return False
    logger.warning(
        f"transformers {version} is older than hfpipe supports (>= {TRANSFORMERS_FLOOR}); "
        f'upgrade it: pip install "transformers>={TRANSFORMERS_FLOOR}"'
    )
    return True


def quiet_known_deprecations() -> None:
    """Silence the deprecation notes hfpipe's users cannot act on: trl's configs set ``gradient_checkpointing``,
    which transformers 5.23 renamed ``activation_checkpointing`` (both names work in hfpipe's YAML)."""
    warnings.filterwarnings(
        "ignore", message=r"`(is_)?gradient_checkpointing\w*` is deprecated", category=FutureWarning
    )


def _to_strategy(value) -> str:
    return "group_by_length" if _truthy(value) else "random"


def _to_group_by_length(value) -> bool:
    if value in ("random", "group_by_length"):
        return value == "group_by_length"
    raise ValueError(
        f"train_sampling_strategy {value!r} needs transformers 5.2 or later (installed: {transformers_version()}); "
        "upgrade it, or use group_by_length: true|false"
    )


def _same(value):
    return value


# TrainingArguments keys renamed within transformers 5: (old name, new name, value old->new, value new->old).
RENAMED_TRAINING_KEYS = (
    ("group_by_length", "train_sampling_strategy", _to_strategy, _to_group_by_length),  # 5.2
    ("gradient_checkpointing", "activation_checkpointing", _same, _same),  # 5.23
    ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs", _same, _same),  # 5.23
)


def training_key_translations(known: set[str]) -> dict[str, Callable[[object], dict]]:
    """How to write ``TrainingArguments`` keys that this transformers release names otherwise.

    A config may use either name of a renamed key (``RENAMED_TRAINING_KEYS``) on any release. Returns
    ``{key: value -> {key: value}}`` for the names this release does not know.
    """
    translations = {}
    for old, new, forward, backward in RENAMED_TRAINING_KEYS:
        if new in known and old not in known:
            translations[old] = lambda value, new=new, forward=forward: {new: forward(value)}
        elif old in known and new not in known:
            translations[new] = lambda value, old=old, backward=backward: {old: backward(value)}
    return translations


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")
