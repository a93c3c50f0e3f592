"""Loading a model and its tokenizer: one rule for every recipe, benchmark, evaluation and the server.

    model, tokenizer = load_model_and_tokenizer("outputs/quickstart")

``name_or_path`` may be
- an hfpipe directory or Hub id (``model_type: gpt``)      -> ``GPTForCausalLM`` / ``GPTForSequenceClassification``
- a GPT-2 directory or Hub id (``model_type: gpt2``)       -> converted to the hfpipe model, same weights
- any other ``AutoModelForCausalLM`` checkpoint            -> loaded as it is
- a peft adapter directory (``adapter_config.json``)       -> its base by the same rule, plus the adapter
                                                              (merged into a plain model with ``merge_adapter``)

A path that looks local but does not exist fails at once, naming it (no Hub round trips), and a
checkpoint whose weights mostly do not fit the model is an error, never a silently random model.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GPT2LMHeadModel,
    PreTrainedModel,
)
from transformers.utils import logging as hf_logging

from .convert import gpt2_to_gpt
from .models.gpt import GPTConfig, GPTForCausalLM, GPTForSequenceClassification

logger = logging.getLogger(__name__)

TASKS = ("causal-lm", "sequence-classification")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "encoder.json", "tokenizer.model")
ADAPTER_CONFIG = "adapter_config.json"
# A head that is new by design (a classifier's score) is expected to be missing; the backbone is not.
_NEW_HEAD_PREFIXES = ("score.",)


def looks_local(name_or_path: str | os.PathLike) -> bool:
    """True for strings that can only mean a local path (Hub ids are ``name`` or ``org/name``)."""
    s = str(name_or_path)
    parts = Path(s).expanduser().parts
    return (
        s.startswith((".", "/", "~"))
        or s.count("/") > 1
        or "\\" in s
        or Path(s).suffix in (".json", ".safetensors", ".bin", ".txt")
        or (len(parts) > 1 and Path(parts[0]).is_dir())
    )


def check_exists(name_or_path: str | os.PathLike, what: str = "model") -> None:
    """Fail at once, naming the path and near matches, when a local-looking path does not exist."""
    path = Path(name_or_path).expanduser()
    if path.exists() or not looks_local(name_or_path):
        return
    parent = path.parent if path.parent.is_dir() else None
    close = difflib.get_close_matches(path.name, [p.name for p in parent.iterdir()], n=1) if parent else []
    hint = f"; did you mean {str(parent / close[0])!r}?" if close else "; check the path"
    raise FileNotFoundError(f"{what} {str(name_or_path)!r} does not exist{hint}")


def read_config(name_or_path: str) -> dict:
    """The ``config.json`` of a local directory or Hub id, as a dict."""
    check_exists(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{name_or_path} has no config.json; it is not a saved model directory")
        try:
            return json.loads(config_file.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_file} is not valid JSON ({err}); the checkpoint is corrupt") from None
    return AutoConfig.from_pretrained(name_or_path, trust_remote_code=False).to_dict()


def model_context_length(config) -> int | None:
    """The longest sequence a model config (object or dict) accepts: hfpipe's ``context_length`` or HF's usual
    names; None when the config has none."""
    for name in ("context_length", "max_position_embeddings", "n_positions", "n_ctx"):
        value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def is_adapter(name_or_path: str) -> bool:
    """True for a local peft adapter directory."""
    return (Path(name_or_path).expanduser() / ADAPTER_CONFIG).is_file()


@contextlib.contextmanager
def _quiet_load_report():
    """transformers prints a table of missing/unexpected keys; hfpipe checks and summarises them itself."""
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _from_pretrained(cls, name_or_path: str, **kwargs) -> PreTrainedModel:
    """``cls.from_pretrained`` that refuses a checkpoint whose weights mostly do not fit the model."""
    try:
        with _quiet_load_report():
            model, info = cls.from_pretrained(name_or_path, output_loading_info=True, **kwargs)
    except SafetensorError as err:
        raise ValueError(
            f"the weights in {name_or_path} are corrupt or truncated ({err}); save or download the checkpoint again"
        ) from err
    except RuntimeError as err:
        if "mismatched" not in str(err) and "size mismatch" not in str(err):
            raise
        raise ValueError(
            f"{name_or_path}: the checkpoint does not fit {cls.__name__}: its weights have other shapes than its "
            "config.json gives; the config names another architecture than its weights"
        ) from None
    check_loading_info(model, info, name_or_path)
    return model


def check_loading_info(model, info: dict, name_or_path: str) -> None:
    """Raise when most parameters were not in the checkpoint; log one line for an expected new head."""
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(_NEW_HEAD_PREFIXES)]
    new_head = [k for k in info.get("missing_keys", []) if k.startswith(_NEW_HEAD_PREFIXES)]
    unexpected = list(info.get("unexpected_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    params = dict(model.named_parameters())
    n_missing = sum(params[k].numel() for k in missing if k in params)
    n_total = sum(p.numel() for p in params.values()) or 1
    if n_missing / n_total > 0.5 or mismatched or len(unexpected) > len(params) // 2:
        raise ValueError(
            f"{name_or_path}: the checkpoint does not fit {type(model).__name__} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} mis-shaped tensors, "
            f"e.g. {(missing or unexpected or mismatched)[:3]}); its config.json names another architecture "
            "than its weights, or the weights are not a model's"
        )
    if missing or unexpected:
        logger.warning(
            "%s: %d tensors missing (%s), %d unexpected: they keep their fresh initialisation",
            name_or_path, len(missing), ", ".join(missing[:3]), len(unexpected),
        )  # fmt: skip
    if new_head:
        logger.info(
            "%s: new %s initialised (expected for a new task head)", name_or_path, ", ".join(new_head)
        )


def _load_gpt2_as_gpt(name_or_path: str, task: str, **kwargs) -> PreTrainedModel:
    dtype = kwargs.pop("dtype", None) or torch.float32
    causal = gpt2_to_gpt(_from_pretrained(GPT2LMHeadModel, name_or_path, dtype=dtype))
    if task == "causal-lm":
        return causal
    config = GPTConfig(**{**causal.config.to_diff_dict(), **kwargs})
    classifier = GPTForSequenceClassification(config)
    classifier.model.load_state_dict(causal.model.state_dict())
    logger.info("%s: new score head initialised (expected for a new task head)", name_or_path)
    return classifier.to(causal.dtype)


def load_model(
    name_or_path: str | os.PathLike, task: str = "causal-lm", merge_adapter: bool = False, **kwargs
) -> PreTrainedModel:
    """Load a model by hfpipe's one rule (see the module docstring); ``kwargs`` go to ``from_pretrained``.

    ``task="sequence-classification"`` starts a classifier from a causal checkpoint (pass ``num_labels``,
    ``id2label``, ...): the backbone's weights with a new ``score`` head.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    name_or_path = str(name_or_path)
    check_exists(name_or_path)
    if is_adapter(name_or_path):
        return _load_adapter(name_or_path, task, merge_adapter, **kwargs)
    model_type = read_config(name_or_path).get("model_type", "")
    if model_type == GPTConfig.model_type:
        cls = GPTForCausalLM if task == "causal-lm" else GPTForSequenceClassification
        return _from_pretrained(cls, name_or_path, **kwargs)
    if model_type == "gpt2":
        return _load_gpt2_as_gpt(name_or_path, task, **kwargs)
    cls = AutoModelForCausalLM if task == "causal-lm" else AutoModelForSequenceClassification
    try:
        return _from_pretrained(cls, name_or_path, **kwargs)
    except ValueError as err:
        if "Unrecognized configuration class" in str(err) or "does not recognize" in str(err):
            raise ValueError(
                f"{name_or_path} is a {model_type!r} model, which has no {task} class in transformers; "
                "hfpipe loads its own GPT, GPT-2 and any AutoModelForCausalLM checkpoint"
            ) from None
        raise


def _load_adapter(path: str, task: str, merge: bool, **kwargs):
    from peft import PeftConfig, PeftModel

    base_name = PeftConfig.from_pretrained(path).base_model_name_or_path
    if not base_name:
        raise ValueError(f"adapter {path} does not name its base model (base_model_name_or_path)")
    base = load_model(base_name, task, **kwargs)
    model = PeftModel.from_pretrained(base, path, is_trainable=not merge)
    logger.info("loaded adapter %s on %s%s", path, base_name, " (merged)" if merge else "")
    return model.merge_and_unload() if merge else model


def load_tokenizer(name_or_path: str | os.PathLike, model_max_length: int | None = None):
    """A saved tokenizer directory (model output or tokenizer only), a GPT-2 vocab/merges directory or a Hub id.

    A peft adapter directory without tokenizer files gives its base model's tokenizer. Never runs remote code.
    """
    from .tokenization import load_gpt2_tokenizer

    check_exists(name_or_path, "tokenizer")
    path = Path(name_or_path).expanduser()
    if path.is_dir() and not any((path / f).is_file() for f in TOKENIZER_FILES):
        if is_adapter(str(path)):
            from peft import PeftConfig

            return load_tokenizer(
                PeftConfig.from_pretrained(str(path)).base_model_name_or_path, model_max_length
            )
        raise FileNotFoundError(
            f"{name_or_path} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "set tokenizer_name_or_path to the tokenizer's directory"
        )
    if (
        path.is_dir()
        and not (path / "tokenizer.json").is_file()
        and not (path / "tokenizer_config.json").is_file()
    ):
        tok = load_gpt2_tokenizer(path, model_max_length=model_max_length or 1024)  # vocab/merges files
    else:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=False)
    if model_max_length is not None:
        tok.model_max_length = model_max_length
    return tok


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike,
    task: str = "causal-lm",
    tokenizer_name_or_path: str | os.PathLike | None = None,
    **kwargs,
):
    """``(model, tokenizer)`` by the one rule; the tokenizer comes from the model's directory unless named."""
    check_exists(name_or_path)
    tokenizer = load_tokenizer(tokenizer_name_or_path or name_or_path)
    return load_model(name_or_path, task, **kwargs), tokenizer
