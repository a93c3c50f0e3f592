"""A pipeline stage's attempts (each run of it until it finished, failed or was killed), kept in ``pipeline.json``.

A killed process records nothing at its end, so a killed attempt's wall time is read from its output: from its
start to the newest file it wrote (a lower bound: it may have computed a little after its last write).
"""

from __future__ import annotations

import time
from pathlib import Path


def _last_write(stage_dir: Path, since: float) -> float:
    times = [p.stat().st_mtime for p in stage_dir.rglob("*") if p.is_file()] if stage_dir.is_dir() else []
    return max([since, *times])


def begin_attempt(saved: dict | None, resuming: bool, stage_dir: Path, started: float) -> list[dict]:
    """The attempts of a stage about to run: the earlier ones when it resumes (an unfinished one closed as
    killed, at its last written file), then a new one starting at ``started``."""
    attempts = [dict(a) for a in (saved or {}).get("attempts", [])] if resuming else []
    if resuming and not attempts and saved and "started" in saved:  # a record from before attempts were kept
        attempts = [{"started": saved["started"]}]
    for attempt in attempts:
        if "seconds" not in attempt:
            end = min(_last_write(stage_dir, attempt["started"]), started)
            attempt.update(seconds=end - attempt["started"], outcome="killed")
    return [*attempts, {"started": started}]


def end_attempt(record: dict, outcome: str) -> None:
    """Close the running attempt (``done`` or ``failed``); the stage's ``seconds`` become all attempts' sum."""
    attempt = record["attempts"][-1]
    attempt.update(seconds=time.time() - attempt["started"], outcome=outcome)
    record["seconds"] = sum(a["seconds"] for a in record["attempts"])
