"""Tokenizers: byte-level BPE training, a character-level tokenizer, GPT-2's vocabulary.

Every tokenizer here is a ``PreTrainedTokenizerFast`` backed by the ``tokenizers`` library, so a saved
directory loads with ``AutoTokenizer.from_pretrained(dir)`` and no hfpipe code.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, GPT2Tokenizer, PreTrainedTokenizerFast

from hfpipe.data.args import DataArguments
from hfpipe.io import save_atomically

logger = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"  # placed between documents, as in GPT-2
PAD_TOKEN = "<|pad|>"  # distinct from eos: SFT masks pad positions, and must still learn to emit eos
UNK_TOKEN = "<|unk|>"  # char-level only: byte-level BPE never needs one
SEED_SPECIAL_TOKENS = ["<BOS>", "<EOS>", "<MASK>", "<UNK>", "<SEP>", "<CLS>", "<PAD>"]
BYTE_ALPHABET_SIZE = 256
FINGERPRINT_FILE = "hfpipe_tokenizer.json"  # what a tokenizer was trained on, saved beside it

# Assistant turns (and the eos that ends them) sit inside {% generation %} so that
# apply_chat_template(..., return_assistant_tokens_mask=True) marks exactly what the model must learn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


@dataclass
class TokenizerArguments:
    """Which tokenizer to use, or how to train one."""

    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Existing tokenizer: a saved directory, a GPT-2 vocab/merges directory or a Hub id. "
            "None trains a new one."
        },
    )
    vocab_size: int = field(default=8192, metadata={"help": "BPE vocabulary size, special tokens included."})
    min_frequency: int = field(default=2, metadata={"help": "Minimum count of a pair to be merged."})
    end_of_text_token: str = field(default=EOS_TOKEN, metadata={"help": "Token placed between documents."})
    padding_token: str = field(default=PAD_TOKEN, metadata={"help": "Padding token; must differ from eos."})
    extra_special_tokens: list[str] = field(
        default_factory=list,
        metadata={"help": "More special tokens, e.g. <BOS> <EOS> <MASK> <UNK> <SEP> <CLS>."},
    )
    char_level: bool = field(default=False, metadata={"help": "Character-level vocabulary instead of BPE."})
    model_max_length: int = field(default=1024, metadata={"help": "Longest sequence the model accepts."})


def _check_special_tokens(eos_token: str, pad_token: str | None) -> None:
    if pad_token is not None and pad_token == eos_token:
        raise ValueError(
            f"padding token {pad_token!r} equals the end-of-text token: SFT would mask eos away and the model "
            f"would never learn to stop; choose a distinct padding token such as {PAD_TOKEN!r}"
        )


def _wrap(
    tok: Tokenizer,
    eos_token: str,
    pad_token: str | None,
    extra: Iterable[str],
    model_max_length: int,
    unk_token: str | None = None,
) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=eos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token=unk_token,
        extra_special_tokens=list(extra),
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,  # keeps decode(encode(s)) == s
    )


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8192,
    min_frequency: int = 2,
    eos_token: str = EOS_TOKEN,
    pad_token: str | None = PAD_TOKEN,
    extra_special_tokens: Iterable[str] = (),
    model_max_length: int = 1024,
) -> PreTrainedTokenizerFast:
    """Train a GPT-2-style byte-level BPE on ``texts`` (any iterable of strings, streamed)."""
    _check_special_tokens(eos_token, pad_token)
    specials = list(dict.fromkeys([eos_token, *([pad_token] if pad_token else []), *extra_special_tokens]))
    if vocab_size < BYTE_ALPHABET_SIZE + len(specials):
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the byte alphabet ({BYTE_ALPHABET_SIZE}) plus "
            f"{len(specials)} special tokens; use vocab_size >= {BYTE_ALPHABET_SIZE + len(specials)}"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrap(
        tok, eos_token, pad_token, [t for t in specials if t not in (eos_token, pad_token)], model_max_length
    )


def build_char_tokenizer(
    text: str | Iterable[str],
    eos_token: str = EOS_TOKEN,
    pad_token: str | None = PAD_TOKEN,
    unk_token: str = UNK_TOKEN,
    extra_special_tokens: Iterable[str] = (),
    model_max_length: int = 1024,
) -> PreTrainedTokenizerFast:
    """Character-level tokenizer: ids 0..n-1 are ``sorted(set(text))`` (nanoGPT's stoi), specials follow."""
    _check_special_tokens(eos_token, pad_token)
    chars = sorted(set(text) if isinstance(text, str) else set().union(*map(set, text)))
    specials = list(
        dict.fromkeys([eos_token, *([pad_token] if pad_token else []), unk_token, *extra_special_tokens])
    )
    vocab = {ch: i for i, ch in enumerate(chars)}
    for t in specials:
        vocab.setdefault(t, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk_token))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every code point
    tok.decoder = decoders.Fuse()  # join without spaces
    extra = [t for t in specials if t not in (eos_token, pad_token, unk_token)]
    return _wrap(tok, eos_token, pad_token, extra, model_max_length, unk_token=unk_token)


def _gpt2_files(path: Path) -> tuple[Path, Path] | None:
    for vocab, merges in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
        if (path / vocab).is_file() and (path / merges).is_file():
            return path / vocab, path / merges
    return None


def load_gpt2_tokenizer(
    name_or_path: str | os.PathLike = "openai-community/gpt2",
    pad_token: str | None = PAD_TOKEN,
    model_max_length: int = 1024,
) -> PreTrainedTokenizerFast:
    """GPT-2's byte-level BPE from local vocab/merges files (vocab.json + merges.txt, or OpenAI's
    encoder.json + vocab.bpe) or from a Hub id. A distinct ``pad_token`` is added (id 50257) unless None;
    resize the model's embeddings to ``len(tokenizer)`` when you keep it."""
    path = Path(name_or_path)
    files = _gpt2_files(path) if path.is_dir() else None
    if files:
        vocab = json.loads(files[0].read_text(encoding="utf-8"))
        lines = files[1].read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
        tok = GPT2Tokenizer(
            vocab=vocab,
            merges=merges,
            model_max_length=model_max_length,
            chat_template=CHAT_TEMPLATE,
            clean_up_tokenization_spaces=False,
        )
        tok.name_or_path = str(path)
    elif path.exists() or str(name_or_path).startswith((".", "/")):
        if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
            raise FileNotFoundError(
                f"tokenizer {str(name_or_path)!r}: no vocab.json+merges.txt, encoder.json+vocab.bpe or "
                "tokenizer.json there; pass a directory holding one of them, or a Hub id"
            )
        tok = AutoTokenizer.from_pretrained(str(path))
    else:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), model_max_length=model_max_length)
    if pad_token is not None and tok.pad_token is None:
        _check_special_tokens(tok.eos_token, pad_token)
        tok.add_special_tokens({"pad_token": pad_token})
    if tok.chat_template is None:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def bytes_per_token(tokenizer, texts: Iterable[str], batch_size: int = 1000) -> float:
    """Compression on ``texts``: UTF-8 bytes per token (higher is better; special tokens not added)."""
    backend = tokenizer.backend_tokenizer
    n_bytes = n_tokens = 0
    for batch in batched(texts, batch_size):
        n_bytes += sum(len(t.encode("utf-8")) for t in batch)
        n_tokens += sum(len(e.ids) for e in backend.encode_batch_fast(batch, add_special_tokens=False))
    if n_tokens == 0:
        raise ValueError(
            "bytes_per_token: the held-out text is empty; give it at least one non-empty document"
        )
    return n_bytes / n_tokens


def batched(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of up to ``size`` consecutive items of ``texts`` (any iterable, consumed lazily)."""
    batch = []
    for t in texts:
        batch.append(t)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def save_tokenizer(tokenizer, output_dir: str | os.PathLike, fingerprint: dict | None = None) -> Path:
    """``save_pretrained`` (plus ``fingerprint``, when given, as :data:`FINGERPRINT_FILE`) into a temp dir
    beside ``output_dir``, then rename: never half-written."""

    def save(tmp: Path) -> None:
        tokenizer.save_pretrained(tmp)
        if fingerprint is not None:
            (tmp / FINGERPRINT_FILE).write_text(json.dumps(fingerprint, indent=2))

    return save_atomically(save, output_dir)


def build_tokenizer(tok_args: TokenizerArguments, script_args=None, data_args: DataArguments | None = None):
    """Load ``tok_args.tokenizer_name_or_path``, or train one (BPE or char-level) on the train split of
    ``script_args.dataset_name`` (:func:`hfpipe.data.load_clean_split`).

    Returns (tokenizer, bytes per token on the validation split, or None when there is none). The validation
    split is the data pipeline's, so it never holds a duplicate of a training document.
    """
    from hfpipe.data import load_clean_split
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
    from hfpipe.data import corpus_fingerprint

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
