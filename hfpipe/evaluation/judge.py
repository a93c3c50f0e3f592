"""LLM-as-judge: a larger model behind any OpenAI-compatible chat endpoint scores instruction answers 0-100.

The prompt is the book's (chapter 7). Input: the SFT recipe's ``test_responses.json``, a list of
records with ``instruction``, ``input``, the reference (``output`` or ``reference``) and the model's
answer (``response`` or ``model_response``). Every score is kept with its answer, written atomically
after each call, so a crash or an endpoint that goes down keeps the scores obtained so far, and the
same command run again resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from hfpipe.io import write_json_atomically

logger = logging.getLogger(__name__)

REFERENCE_KEYS = ("output", "reference")
RESPONSE_KEYS = ("response", "model_response")
BUCKETS = ((0, 19), (20, 39), (40, 59), (60, 79), (80, 100))


class JudgeUnavailableError(ConnectionError):
    """The judge endpoint did not answer after the retries."""


def format_input(entry: dict) -> str:
    """The Alpaca-style prompt of the book (chapter 7) for an instruction record."""
    text = (
        "Below is an instruction that describes a task. Write a response that appropriately completes "
        f"the request.\n\n### Instruction:\n{entry['instruction']}"
    )
    return text + (f"\n\n### Input:\n{entry['input']}" if entry.get("input") else "")


def judge_prompt(entry: dict) -> str:
    """The book's 0-100 scoring prompt for one normalised record."""
    return (
        f"Given the input `{format_input(entry)}` and correct output `{entry['output']}`, "
        f"score the model response `{entry['model_response']}` on a scale from 0 to 100, where 100 is the "
        "best score. Respond with the integer number only."
    )


def parse_score(reply: str | None) -> int | None:
    """The first integer in 0..100 in the judge's reply, or None when it gives none (never 0 by default)."""
    for match in re.finditer(r"(?<![\d.])(\d{1,3})(?!\d|\.\d)", reply or ""):
        value = int(match.group(1))
        if value <= 100:
            return value
    return None


def _first(entry: dict, keys: tuple[str, ...], what: str, index: int, path) -> str:
    for key in keys:
        if key in entry:
            return entry[key]
    raise ValueError(
        f"{path}: record {index} has no {what} (one of {list(keys)}); its keys are {sorted(entry)}"
    )


def load_responses(path: str | os.PathLike) -> list[dict]:
    """Read ``test_responses.json`` (a JSON list, or JSON lines) into records with ``output`` and ``model_response``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"responses file {str(path)!r} does not exist; run the SFT recipe first")
    text = path.read_text(encoding="utf-8")
    try:
        data = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(x) for x in text.splitlines() if x.strip()]
        )
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not JSON or JSON lines ({err})") from None
    if not data:
        raise ValueError(f"{path} holds no records; nothing to judge")
    records = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "instruction" not in entry:
            raise ValueError(f"{path}: record {i} is not an object with an 'instruction'")
        records.append({
            "instruction": entry["instruction"],
            "input": entry.get("input", ""),
            "output": _first(entry, REFERENCE_KEYS, "reference answer", i, path),
            "model_response": _first(entry, RESPONSE_KEYS, "model response", i, path),
        })  # fmt: skip
    return records


@dataclass
class JudgeSummary:
    """Mean and distribution of the scores; unparsable replies are counted apart."""

    scores: list[int] = field(default_factory=list)
    unparsable: int = 0

    def metrics(self) -> dict[str, float]:
        out = {
            "judge/mean": statistics.fmean(self.scores) if self.scores else float("nan"),
            "judge/scored": len(self.scores),
            "judge/unparsable": self.unparsable,
        }
        if self.scores:
            out["judge/median"] = statistics.median(self.scores)
        return out

    def distribution(self) -> dict[str, int]:
        return {f"{lo}-{hi}": sum(lo <= s <= hi for s in self.scores) for lo, hi in BUCKETS}


def _summarise(records: list[dict]) -> JudgeSummary:
    judged = [r for r in records if "judge_reply" in r]
    return JudgeSummary(
        scores=[r["score"] for r in judged if r["score"] is not None],
        unparsable=sum(r["score"] is None for r in judged),
    )


def _previous_records(output_path: Path, records: list[dict]) -> list[dict]:
    """Records of an earlier run on the same answers (resume), else the fresh ones."""
    if not output_path.is_file():
        return records
    try:
        old = json.loads(output_path.read_text(encoding="utf-8")).get("records", [])
    except (json.JSONDecodeError, AttributeError):
        return records
    key = lambda r: (r["instruction"], r["input"], r["output"], r["model_response"])  # noqa: E731
    done = {key(r): r for r in old if "judge_reply" in r}
    return [done.get(key(r), r) for r in records]


def judge_responses(
    records: list[dict],
    base_url: str,
    model: str,
    output_path: str | os.PathLike,
    api_key: str | None = None,
    max_retries: int = 3,
    timeout: float = 60.0,
    max_tokens: int | None = None,
    progress: bool = True,
) -> JudgeSummary:
    """Score each record with the judge at ``base_url`` (OpenAI-compatible, e.g. ``http://localhost:11434/v1``).

    Writes ``output_path`` (every record with its ``score`` and ``judge_reply``, plus the summary) after
    each answer. Failed calls are retried ``max_retries`` times with backoff (by the ``openai`` client);
    then a ``JudgeUnavailableError`` names the URL and where the scores so far are.
    """
    import openai

    client = openai.OpenAI(
        base_url=base_url, api_key=api_key or "not-needed", max_retries=max_retries, timeout=timeout
    )
    output_path = Path(output_path)
    records = _previous_records(output_path, [dict(r) for r in records])

    def save() -> None:
        summary = _summarise(records)
        write_json_atomically({
            "judge": {"base_url": base_url, "model": model},
            "metrics": summary.metrics(),
            "distribution": summary.distribution(),
            "records": records,
        }, output_path)  # fmt: skip

    todo = [r for r in records if "judge_reply" not in r]
    if len(todo) < len(records):
        logger.info(
            "resuming: %d of %d answers already judged in %s",
            len(records) - len(todo),
            len(records),
            output_path,
        )
    for record in tqdm(todo, desc="judging", unit="answer", disable=not progress):
        try:
            reply = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": judge_prompt(record)}],
                temperature=0.0,
                max_tokens=max_tokens,
            )
        except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError) as err:
            save()
            n_done = len(records) - len(todo) + todo.index(record)
            raise JudgeUnavailableError(
                f"judge endpoint {base_url} failed after {max_retries} retries ({type(err).__name__}: {err}); "
                f"the {n_done} scores obtained so far are in {output_path}; run again to resume"
            ) from err
        except openai.APIStatusError as err:  # 4xx: a wrong model name or key, not worth retrying
            save()
            raise ValueError(
                f"judge endpoint {base_url} refused the request ({err.status_code}: {err.message}); "
                f"check judge_model {model!r} and the API key"
            ) from err
        content = reply.choices[0].message.content if reply.choices else None
        record["judge_reply"] = content
        record["score"] = parse_score(content)
        save()
    if not todo:
        save()
    summary = _summarise(records)
    if summary.unparsable:
        logger.warning(
            "%d judge replies held no score in 0..100 (kept as unparsable, not 0)", summary.unparsable
        )
    return summary
