"""Is a name a Hub repository this machine can use? Decided in seconds, offline too.

A name that is not a local path is a Hub id. Before transformers or datasets spend a minute in retries, hfpipe
asks once: is the repository in the local Hub cache, is ``HF_HUB_OFFLINE`` set, can the Hub be reached at
all? When it cannot, the run goes on from the cache (offline mode) or stops with one line naming the name.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

from huggingface_hub import constants

logger = logging.getLogger(__name__)
PROBE_SECONDS = 3.0


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


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (the environment, or huggingface_hub's constant)."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.strip().lower() in ("1", "true", "yes", "on") or bool(constants.HF_HUB_OFFLINE)


@functools.cache
def hub_reachable(endpoint: str | None = None, timeout: float = PROBE_SECONDS) -> bool:
    """True when the Hub answers an HTTP request within ``timeout`` seconds (asked once per process).

    A thread bounds the wait: name resolution is not covered by urllib's own timeout.
    """
    url = endpoint or constants.ENDPOINT
    answered = []

    def probe():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout)
            answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)  # it answered, if not with 200
        except Exception:  # no route, no name resolution, refused, timed out: the Hub is out of reach
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answered)


def in_hub_cache(repo_id: str, repo_type: str = "model") -> bool:
    """True when the Hub cache holds a snapshot of ``repo_id`` (or, for datasets, the datasets cache does)."""
    folder = f"{repo_type}s--{repo_id.replace('/', '--')}"
    if (Path(constants.HF_HUB_CACHE) / folder / "snapshots").is_dir():
        return True
    if repo_type == "dataset":
        datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE", Path(constants.HF_HOME) / "datasets"))
        return (datasets_cache / repo_id.replace("/", "___")).is_dir()
    return False


def go_offline() -> None:
    """Make transformers, datasets and huggingface_hub use the local cache only, from now on, in this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True


def check_hub_name(name: str, what: str = "model", repo_type: str = "model") -> None:
    """Fail in seconds, naming ``name``, when it is not a local path and the Hub cannot provide it.

    A repository in the local cache is used from there when the Hub is out of reach (with one log line).
    """
    cached = in_hub_cache(name, repo_type)
    if hub_offline():
        if not cached:
            raise FileNotFoundError(
                f"{what} {name!r} is not a local directory or file, and HF_HUB_OFFLINE=1 keeps the Hub out (it "
                "is not in the local Hub cache either); check the path"
            )
        return
    if hub_reachable():
        return
    if cached:
        logger.info("the Hub (%s) cannot be reached: using %s from the local cache", constants.ENDPOINT, name)
        go_offline()
        return
    raise FileNotFoundError(
        f"{what} {name!r} is not a local directory or file, and the Hub ({constants.ENDPOINT}) could not be "
        "reached to look for it; check the path, or connect (HF_HUB_OFFLINE=1 skips the Hub at once)"
    )
