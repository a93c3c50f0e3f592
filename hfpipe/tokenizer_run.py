"""The tokenizer a run uses: loaded by name, or trained on the run's corpus and kept beside its output with a
record of that corpus and the settings (reused only when both match)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hfpipe.data.args import DataArguments
from hfpipe.tokenization import (
    FINGERPRINT_FILE,
    TokenizerArguments,
    build_char_tokenizer,
    bytes_per_token,
    save_tokenizer,
    train_bpe_tokenizer,
)

logger = logging.getLogger(__name__)


def build_tokenizer(tok_args: TokenizerArguments, script_args=None, data_args: DataArguments | None = None):
    """Load ``tok_args.tokenizer_name_or_path``, or train one (BPE or char-level) on the train split of
    ``script_args.dataset_name`` (:func:`hfpipe.data.load_clean_split`).

    Returns (tokenizer, bytes per token on the validation split, or None when there is none). The validation
    split is the data pipeline's, so it never holds a duplicate of a training document.
    """
    from hfpipe.data.prepare import load_clean_split  # here, not above: a recipe's --help needs neither
    from hfpipe.loading import load_tokenizer

    has_data = script_args is not None and bool(script_args.dataset_name)
    if not tok_args.tokenizer_name_or_path and not has_data:
        raise ValueError(
            "no tokenizer to load and no data to train one: set tokenizer_name_or_path or dataset_name"
        )
    if not has_data:
        return load_tokenizer(tok_args.tokenizer_name_or_path, tok_args.model_max_length), None
    corpus, _ = load_clean_split(script_args, data_args or DataArguments())
    texts = lambda split: (t for b in split.iter(batch_size=1000) for t in b["text"])  # noqa: E731
    if tok_args.tokenizer_name_or_path:
        tok = load_tokenizer(tok_args.tokenizer_name_or_path, tok_args.model_max_length)
    elif tok_args.char_level:
        tok = build_char_tokenizer(texts(corpus["train"]), tok_args.end_of_text_token, tok_args.padding_token,
                                   extra_special_tokens=tok_args.extra_special_tokens,
                                   model_max_length=tok_args.model_max_length)  # fmt: skip
    else:
        tok = train_bpe_tokenizer(texts(corpus["train"]), tok_args.vocab_size, tok_args.min_frequency,
                                  tok_args.end_of_text_token, tok_args.padding_token, tok_args.extra_special_tokens,
                                  tok_args.model_max_length)  # fmt: skip
    heldout = list(texts(corpus["validation"])) if "validation" in corpus else []
    bpt = bytes_per_token(tok, heldout) if any(heldout) else None
    if bpt is not None:
        logger.info("held-out compression: %.3f bytes/token over %d documents", bpt, len(heldout))
    return tok, bpt


def tokenizer_fingerprint(tok_args: TokenizerArguments, script_args, data_args: DataArguments) -> dict:
    """What a trained tokenizer depends on (JSON-ready): the tokenizer settings and the corpus
    (:func:`hfpipe.data.corpus_fingerprint`: source files or Hub id, cleaning and split settings)."""
    from hfpipe.data.sources import corpus_fingerprint

    return json.loads(
        json.dumps({"tokenizer": asdict(tok_args), "corpus": corpus_fingerprint(script_args, data_args)})
    )


def tokenizer_for_run(
    tok_args: TokenizerArguments, script_args, data_args: DataArguments, directory: str | os.PathLike
) -> PreTrainedTokenizerFast:
    """The tokenizer this run trains on its corpus, kept in ``directory``.

    A tokenizer already in ``directory`` is reused only when its :data:`FINGERPRINT_FILE` matches
    :func:`tokenizer_fingerprint` (the same corpus and settings: a resumed run, or another rank that trained
    it first); otherwise a new one is trained and atomically replaces it. The log says which and why.
    """
    directory = Path(directory)
    want = tokenizer_fingerprint(tok_args, script_args, data_args)
    reason = _mismatch(directory, want)
    if reason is None:
        logger.info("reusing the tokenizer in %s (trained on the same corpus and settings)", directory)
        return AutoTokenizer.from_pretrained(str(directory))
    log = logger.info if reason.startswith("no tokenizer") else logger.warning
    log("training a new tokenizer for %s: %s", directory, reason)
    tokenizer, bpt = build_tokenizer(tok_args, script_args, data_args)
    save_tokenizer(tokenizer, directory, fingerprint=want)
    logger.info("saved a %d-token tokenizer to %s (held-out bytes/token: %s)", len(tokenizer), directory,
                "n/a" if bpt is None else f"{bpt:.3f}")  # fmt: skip
    return tokenizer


def _mismatch(directory: Path, want: dict) -> str | None:
    """Why the tokenizer in ``directory`` cannot be reused for ``want``; None when it can."""
    if not (directory / "tokenizer.json").is_file():
        return "no tokenizer there yet"
    try:
        saved = json.loads((directory / FINGERPRINT_FILE).read_text())
    except (OSError, ValueError):
        return f"the tokenizer there has no readable {FINGERPRINT_FILE} (left over from an earlier run?); replacing it"
    if saved == want:
        return None
    if saved.get("corpus", {}).get("source") != want["corpus"]["source"]:
        return f"the tokenizer there was trained on another corpus ({saved.get('corpus', {}).get('source')}); replacing it"
    changed = sorted(
        f"{part}.{k}"
        for part in ("tokenizer", "corpus")
        for k in set(saved.get(part, {})) | set(want[part])
        if saved.get(part, {}).get(k) != want[part].get(k)
    )
    return f"the tokenizer there was trained with other settings ({', '.join(changed)}); replacing it"
