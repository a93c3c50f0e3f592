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
import inspect
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

from .convert import gpt2_to_gpt, gpt_to_gpt2
from .hub import check_hub_name, looks_local
from .io import save_atomically, write_file_atomically
from .models.gpt import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from .tokenization import load_gpt2_tokenizer

logger = logging.getLogger(__name__)

TASKS = ("causal-lm", "sequence-classification")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "encoder.json", "tokenizer.model")
ADAPTER_CONFIG = "adapter_config.json"
# A head that is new by design (a classifier's score) is expected to be missing; the backbone is not.
_NEW_HEAD_PREFIXES = ("score.",)


def check_exists(name_or_path: str | os.PathLike, what: str = "model", repo_type: str = "model") -> None:
    """Fail at once, naming the path and near matches, when a local-looking path does not exist; and in
    seconds when a Hub id is neither cached nor reachable (``hfpipe.hub``)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return
    if not looks_local(name_or_path):
        check_hub_name(str(name_or_path), what, repo_type)
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


def resolve_max_length(max_length: int | None, context: int | None) -> int | None:
    """``max_length`` capped at the model's context length (with a log line when it is cut)."""
    if context is None:
        return max_length
    if max_length is None or max_length > context:
        logger.info("max_length %s exceeds the model's context (%d): using %d", max_length, context, context)
        return context
    return max_length


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
            "%s has no classification head: starting a new one (%s), which this stage trains",
            name_or_path, ", ".join(new_head),
        )  # fmt: skip


def _load_gpt2_as_gpt(name_or_path: str, task: str, **kwargs) -> PreTrainedModel:
    dtype = kwargs.pop("dtype", None) or torch.float32
    causal = gpt2_to_gpt(_from_pretrained(GPT2LMHeadModel, name_or_path, dtype=dtype))
    if task == "causal-lm":
        return causal
    config = GPTConfig(**{**causal.config.to_diff_dict(), **kwargs})
    classifier = GPTForSequenceClassification(config)
    classifier.model.load_state_dict(causal.model.state_dict())
    logger.info(
        "%s has no classification head: starting a new one (score), which this stage trains", name_or_path
    )
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
    config = read_config(name_or_path)
    check_head(name_or_path, config.get("architectures") or [], task)
    model_type = config.get("model_type", "")
    if model_type == GPTConfig.model_type:
        warn_if_stale_code(name_or_path)
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


def check_head(name_or_path: str, architectures: list[str], task: str) -> None:
    """Refuse a sequence classifier where a language model is needed: its LM head was never trained, so it
    cannot generate (a causal start for a classifier gets a new head instead, with one log line)."""
    if (
        task == "causal-lm"
        and architectures
        and all(a.endswith("ForSequenceClassification") for a in architectures)
    ):
        raise ValueError(
            f"{name_or_path} is a sequence classifier ({architectures[0]}): it has no trained language-model head "
            "and cannot generate; start from a causal checkpoint (a pretraining or SFT output, GPT-2)"
        )


MODEL_CODE_FILES = ("configuration_gpt.py", "modeling_gpt.py")


def stale_code_files(model_dir: str | os.PathLike) -> list[str]:
    """The model code files saved in ``model_dir`` that differ from this hfpipe's (an older or newer hfpipe)."""
    source = Path(inspect.getfile(GPTForCausalLM)).parent
    saved = [Path(model_dir) / name for name in MODEL_CODE_FILES]
    return [p.name for p in saved if p.is_file() and p.read_bytes() != (source / p.name).read_bytes()]


def warn_if_stale_code(model_dir: str | os.PathLike) -> None:
    """One warning when ``model_dir``'s saved model code is another hfpipe's: hfpipe loads it with its own
    classes, but ``trust_remote_code=True`` without hfpipe runs the saved copy."""
    stale = stale_code_files(model_dir)
    if stale:
        logger.warning(
            "%s holds the model code of another hfpipe version (%s); it loads here with this hfpipe's, but "
            "elsewhere trust_remote_code=True runs the saved copy (an hfpipe before 0.2 generates wrong text on "
            "transformers >= 5.24). Refresh it: hfpipe refresh_code %s",
            model_dir, ", ".join(stale), model_dir,
        )  # fmt: skip


def refresh_code(model_dir: str | os.PathLike) -> list[str]:
    """Replace the model code saved in ``model_dir`` with this hfpipe's (weights and config untouched);
    returns the names of the files it replaced."""
    if read_config(str(model_dir)).get("model_type") != GPTConfig.model_type:
        raise ValueError(f"{model_dir} is not an hfpipe GPT directory (model_type {GPTConfig.model_type!r})")
    source = Path(inspect.getfile(GPTForCausalLM)).parent
    stale = stale_code_files(model_dir)
    for name in MODEL_CODE_FILES:
        if name in stale or not (Path(model_dir) / name).is_file():
            text = (source / name).read_text()
            write_file_atomically(lambda tmp, text=text: tmp.write_text(text), Path(model_dir) / name)
    return stale


def _load_adapter(path: str, task: str, merge: bool, **kwargs):
    from peft import PeftConfig, PeftModel

    adapter = PeftConfig.from_pretrained(path)
    base_name = adapter.base_model_name_or_path
    if not base_name:
        raise ValueError(f"adapter {path} does not name its base model (base_model_name_or_path)")
    if str(adapter.task_type) in ("SEQ_CLS", "TaskType.SEQ_CLS"):
        check_head(path, ["AdapterForSequenceClassification"], task)
    base = load_model(base_name, task, **kwargs)
    model = PeftModel.from_pretrained(base, path, is_trainable=not merge)
    logger.info("loaded adapter %s on %s%s", path, base_name, " (merged)" if merge else "")
    return model.merge_and_unload() if merge else model


def load_tokenizer(name_or_path: str | os.PathLike, model_max_length: int | None = None):
    """A saved tokenizer directory (model output or tokenizer only), a GPT-2 vocab/merges directory or a Hub id.

    A peft adapter directory without tokenizer files gives its base model's tokenizer. Never runs remote code.
    """
    check_exists(name_or_path, "tokenizer")  # first: a typo fails before the tokenizer code is imported

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


def convert_checkpoint(source: str, output_dir: str, direction: str = "to_hfpipe") -> Path:
    """Convert a checkpoint directory or Hub id and save it (with its tokenizer, if any) to ``output_dir``."""
    if direction not in ("to_hfpipe", "to_gpt2"):
        raise ValueError(f"direction must be 'to_hfpipe' or 'to_gpt2', got {direction!r}")
    check_exists(source)
    model_type = read_config(source).get("model_type")
    if direction == "to_hfpipe" and model_type != "gpt2":
        raise ValueError(f"{source} is not a GPT-2 checkpoint; direction 'to_hfpipe' needs model_type 'gpt2'")
    if direction == "to_gpt2" and model_type != GPTConfig.model_type:
        raise ValueError(f"{source} is not an hfpipe GPT checkpoint; direction 'to_gpt2' needs one")
    model = load_model(source)  # GPT-2 is converted to hfpipe on load
    if direction == "to_gpt2":
        model = gpt_to_gpt2(model)
    try:
        tokenizer = load_tokenizer(source)
    except (OSError, ValueError):
        tokenizer = None
        logger.warning("no tokenizer found at %s; saving the model alone", source)

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)

    path = save_atomically(save, output_dir)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("converted %s -> %s (%s, %s parameters)", source, path, direction, f"{n_params:,}")
    return path
