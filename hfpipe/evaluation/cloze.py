"""The local multiple-choice task ``hfpipe_mc``: cloze items from held-out docstrings, where only the context decides.

Each item is a sentence of the standard library's docstrings that the default corpus holds out for validation
(hfpipe's content-hash split with the default ``split_seed``), cut before its last word. The three distractors
are the same kind of word, from the same corpus: words that also end sentences there and most often follow the
same kind of word (a determiner: nouns; "to": verbs; "is": adjectives), of about the same length and as many
tokens (in the quickstart's tokenizer), the nearest in frequency, and never seen after the sentence's
next-to-last word. The frequency ranks are balanced: the answer is the most frequent of the four choices in a
quarter of the items, the second in a quarter, and so on. So a model that only learned which words are common
scores chance (25 %); reading the context is what scores above it.

    python -m hfpipe.evaluation.cloze        # rebuilds tasks/hfpipe_mc.jsonl from this machine's stdlib
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

TASK_FILE = Path(__file__).resolve().parent / "tasks" / "hfpipe_mc.jsonl"
SPLIT_SEED, VALIDATION_SHARE = 42, 0.05  # the default corpus' split (DataArguments, quickstart.yaml)
CHOICES = 4
WORD = re.compile(r"[A-Za-z]+")
SENTENCE_END = re.compile(r"\b([a-z]{3,})\.(?=\s|$)")  # "word." but not "os.path"
PLAIN_SENTENCE = re.compile(r"[A-Z][a-z]*(?:,? [A-Za-z][a-z]*){3,22} [a-z]{3,}\.")  # words and commas only


def sentences(document: str) -> list[str]:
    """The plain-prose sentences of a docstring (words and commas, 5 to 24 words, ending in a lowercase word)."""
    found = []
    for paragraph in re.split(r"\n\s*\n", document):
        flat = " ".join(paragraph.split())
        found += [s for s in re.split(r"(?<=\.)\s+", flat) if PLAIN_SENTENCE.fullmatch(s)]
    return found


# A word's kind, roughly its part of speech, is the kind of word it most often follows.
AFTER = {"the": "noun", "a": "noun", "an": "noun", "this": "noun", "each": "noun", "its": "noun",
         "their": "noun", "any": "noun", "every": "noun", "to": "verb", "is": "adjective", "are": "adjective",
         "be": "adjective", "been": "adjective", "not": "adjective"}  # fmt: skip


class WordStats:
    """Word counts, sentence-final words, word pairs and each word's kind in a corpus."""

    def __init__(self, documents: Iterable[str]):
        self.counts, self.final, self.pairs, self.follows = Counter(), Counter(), set(), Counter()
        for doc in documents:
            words = WORD.findall(doc)
            self.counts.update(words)
            self.pairs.update(zip(words, words[1:]))
            self.follows.update((w, AFTER[p.lower()]) for p, w in zip(words, words[1:]) if p.lower() in AFTER)
            self.final.update(SENTENCE_END.findall(doc))

    def kind(self, word: str) -> str:
        """noun, verb or adjective: what ``word`` most often follows (a determiner, "to", "is"); else other."""
        kinds = {k: self.follows[word, k] for k in ("noun", "verb", "adjective")}
        best = max(kinds, key=kinds.get)
        return best if kinds[best] >= 2 else "other"

    def final_words(self, min_count: int = 10, min_final: int = 3) -> list[str]:
        """Words that end sentences often enough to serve as answers or distractors."""
        return [w for w, n in self.final.items() if n >= min_final and self.counts[w] >= min_count]


def distractors(answer: str, previous: str, rank: int, pool: list[str], stats: WordStats,
                tokens: dict[str, int] | None = None) -> list[str] | None:  # fmt: skip
    """Three words of ``pool`` near ``answer`` in frequency, ``rank`` of them more frequent; None if too few.
    With ``tokens`` (word -> its token count), only words of the answer's token count."""
    count, kind, length = stats.counts[answer], stats.kind(answer), (tokens or {}).get(answer)
    fits = [w for w in pool if abs(len(w) - len(answer)) <= 2 and w[:4] != answer[:4] and stats.kind(w) == kind
            and (previous, w) not in stats.pairs and stats.counts[w] != count
            and (tokens or {}).get(w) == length]  # fmt: skip
    above = sorted((w for w in fits if stats.counts[w] > count), key=lambda w: stats.counts[w])[:rank]
    below = sorted((w for w in fits if stats.counts[w] < count), key=lambda w: -stats.counts[w])[
        : CHOICES - 1 - rank
    ]
    return above + below if len(above) + len(below) == CHOICES - 1 else None


def build_items(held_out: list[str], corpus: list[str], n_items: int = 200, seed: int = 0,
                tokenizer=None) -> list[dict]:  # fmt: skip
    """Cloze items (``question``, ``choices``, ``answer``) from the sentences of ``held_out`` documents, with
    distractors from ``corpus`` (see the module docstring); with a ``tokenizer``, each of as many tokens as the
    answer. Deterministic for the same texts and seed."""
    stats = WordStats(corpus)
    pool = sorted(stats.final_words())
    tokens = None
    if tokenizer is not None:
        ids = tokenizer([f" {w}." for w in pool], add_special_tokens=False)["input_ids"]
        tokens = {w: len(i) for w, i in zip(pool, ids)}
    finals = set(pool)
    rng = random.Random(seed)
    candidates = [(i, s) for i, doc in enumerate(held_out) for s in sentences(doc)]
    rng.shuffle(candidates)
    items, used_docs, used_answers = [], Counter(), Counter()
    for doc, sentence in candidates:
        *_, previous, last = sentence[:-1].replace(",", "").split(" ")
        if used_docs[doc] >= 3 or last not in finals or used_answers[last] >= 3:
            continue
        others = distractors(last, previous, len(items) % CHOICES, pool, stats, tokens)
        if others is None:
            continue
        choices = [last, *others]
        rng.shuffle(choices)
        question = sentence[: -len(last) - 2]
        items.append(
            {"question": question, "choices": [f"{c}." for c in choices], "answer": choices.index(last)}
        )
        used_docs[doc] += 1
        used_answers[last] += 1
        if len(items) == n_items:
            break
    return items


def build_stdlib_items(n_items: int = 200) -> list[dict]:
    """The items from this machine's standard-library docstrings: held out as the default corpus splits them."""
    from hfpipe.data.prepare import _validation_mask
    from hfpipe.data.stdlib_corpus import iter_stdlib_docstrings
    from hfpipe.tokenization import train_bpe_tokenizer

    documents = list(dict.fromkeys(iter_stdlib_docstrings()))
    held = _validation_mask(documents, SPLIT_SEED, VALIDATION_SHARE)
    tokenizer = train_bpe_tokenizer(documents, vocab_size=2048, min_frequency=2)  # the quickstart's
    return build_items([d for d, h in zip(documents, held) if h], documents, n_items, tokenizer=tokenizer)


def main() -> None:
    """Rewrite ``tasks/hfpipe_mc.jsonl`` from this machine's standard library."""
    from hfpipe.io import write_file_atomically

    items = build_stdlib_items()
    lines = "".join(json.dumps(item) + "\n" for item in items)
    write_file_atomically(lambda tmp: tmp.write_text(lines, encoding="utf-8"), TASK_FILE)
    print(f"{len(items)} items -> {TASK_FILE}")


if __name__ == "__main__":
    main()
