"""hfpipe.stage_attempts: a killed attempt's wall time from its heartbeat or its files; the heartbeat itself."""

import os
import time

import pytest

from hfpipe.stage_attempts import begin_attempt, end_attempt, heartbeat


def test_a_killed_attempt_ends_at_its_last_heartbeat_or_file(tmp_path):
    start = time.time() - 200
    (tmp_path / "checkpoint").mkdir()
    written = tmp_path / "checkpoint" / "state.json"
    written.write_text("{}")
    os.utime(written, (start + 30, start + 30))
    saved = {"attempts": [{"started": start, "alive": start + 45}]}
    attempts = begin_attempt(saved, True, tmp_path, start + 100)
    assert attempts[0] == {"started": start, "alive": start + 45, "seconds": 45, "outcome": "killed"}
    assert attempts[1] == {"started": start + 100}
    saved["attempts"][0].pop("alive")  # killed before its first heartbeat: its newest file tells
    assert begin_attempt(saved, True, tmp_path, start + 100)[0]["seconds"] == 30
    assert begin_attempt(saved, False, tmp_path, start + 100) == [{"started": start + 100}]  # a rerun: new


def test_end_attempt_sums_every_attempt():
    record = {"attempts": [{"started": 0, "seconds": 45, "outcome": "killed"}, {"started": time.time() - 5}]}
    end_attempt(record, "done")
    assert record["attempts"][1]["outcome"] == "done" and record["seconds"] == pytest.approx(50, abs=1)


def test_the_heartbeat_notes_the_time_and_saves_until_the_block_ends():
    attempt, saves = {}, []
    with heartbeat(attempt, lambda: saves.append(attempt["alive"]), every=0.02):
        time.sleep(0.2)
    count = len(saves)
    time.sleep(0.1)
    assert count >= 2 and len(saves) == count  # stopped with the block
    assert saves == sorted(saves) and attempt["alive"] == saves[-1]
