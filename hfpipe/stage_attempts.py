"""A pipeline stage's attempts (each run of it until it finished, failed or was killed), kept in ``pipeline.json``.

A killed process records nothing at its end, so while a stage runs a heartbeat notes the time in its attempt
every few seconds; a killed attempt's wall time runs from its start to its last heartbeat or the newest file it
wrote, whichever is later (short by at most one heartbeat).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
            seen = max(_last_write(stage_dir, attempt["started"]), attempt.get("alive", 0))
            end = min(seen, started)
            attempt.update(seconds=end - attempt["started"], outcome="killed")
    return [*attempts, {"started": started}]


def end_attempt(record: dict, outcome: str) -> None:
    """Close the running attempt (``done`` or ``failed``); the stage's ``seconds`` become all attempts' sum."""
    attempt = record["attempts"][-1]
    attempt.update(seconds=time.time() - attempt["started"], outcome=outcome)
    record["seconds"] = sum(a["seconds"] for a in record["attempts"])


@contextmanager
def heartbeat(attempt: dict, save: Callable[[], None], every: float = 10.0) -> Iterator[None]:
    """While the block runs, set ``attempt["alive"]`` to the time and ``save()`` every ``every`` seconds."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            attempt["alive"] = time.time()
            try:
                save()
            except OSError:  # a full disk must not stop the stage; the attempt is then only less precise
                pass

    thread = threading.Thread(target=beat, name="hfpipe-stage-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()  # before the caller writes the state itself: one writer at a time
