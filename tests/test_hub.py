"""Names that are not local paths: decided in seconds, offline too, with one line naming the name."""

import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from huggingface_hub import constants

from hfpipe import hub
from hfpipe.loading import check_exists, load_tokenizer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub_at(monkeypatch):
    """Point the Hub at ``url`` (fresh probe, online mode)."""

    def point(url: str):
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        hub.hub_reachable.cache_clear()

    yield point
    hub.hub_reachable.cache_clear()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    return tmp_path / "hub"


def test_mistyped_local_path_fails_at_once_with_a_near_match(tmp_path, monkeypatch):
    (tmp_path / "out" / "tokenizer").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"'out/tokenizr' does not exist; did you mean 'out/tokenizer'"
    ):
        load_tokenizer("out/tokenizr")


def test_unreachable_hub_fails_in_seconds_naming_the_name(hub_at, empty_cache, monkeypatch):
    monkeypatch.setattr(hub, "go_offline", lambda: pytest.fail("nothing cached: must not go offline"))
    hub_at("http://127.0.0.1:9")  # the discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        load_tokenizer("tokenizr")
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert "'tokenizr' is not a local directory" in message and "could not be reached" in message


def test_offline_mode_fails_at_once(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match="'someone/model' is not a local directory.*HF_HUB_OFFLINE=1"):
        check_exists("someone/model")
    assert time.monotonic() - start < 1


def test_cached_repo_is_used_offline_when_the_hub_is_out_of_reach(hub_at, empty_cache, monkeypatch):
    (empty_cache / "models--someone--model" / "snapshots" / "abc").mkdir(parents=True)
    went_offline = []
    monkeypatch.setattr(hub, "go_offline", lambda: went_offline.append(True))
    hub_at("http://127.0.0.1:9")
    check_exists("someone/model")  # no error: the cache has it
    assert went_offline == [True]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_exists("someone/model")


def test_dataset_ids_are_checked_too(hub_at, empty_cache):
    from hfpipe.data.sources import resolve_files

    hub_at("http://127.0.0.1:9")
    with pytest.raises(FileNotFoundError, match="dataset 'someone/corpus' is not a local directory"):
        resolve_files("someone/corpus")


def test_a_hub_that_answers_is_reachable(hub_at):
    class Head(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)  # any answer counts
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Head)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hub_at(f"http://127.0.0.1:{server.server_address[1]}")
        assert hub.hub_reachable()
    finally:
        server.shutdown()


def test_recipe_ends_in_one_line_offline(tmp_path):
    (tmp_path / "corpus.txt").write_text("hello world\n" * 20)
    env = {"PATH": "", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    cmd = [sys.executable, str(REPO / "recipes" / "prepare_data.py"), "--dataset_name", "corpus.txt",
           "--tokenizer_name_or_path", "tokenizr", "--output_dir", "packed"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert (
        first.startswith("error: tokenizer 'tokenizr' is not a local directory") and "HF_HUB_OFFLINE" in first
    )
    assert not (tmp_path / "packed").exists()
