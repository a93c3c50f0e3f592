"""Shared test fixtures.

`shared_data` points at ``../shared/data`` (reference data beside the project). In CI
(``CI=true``) a missing directory is a hard failure; elsewhere the tests that need it skip.
`import_script` (and the `load_script` fixture) import a script of the repository by its path; `hfpipe_wheel`
builds hfpipe's wheel, once per session.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import psutil
import pytest

# Tests never reach the Hub: fail fast instead of waiting on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every test sees the same precision whatever the CPU: the fp32 answer of the bf16 check, so that exact
# comparisons hold on CPUs with AVX512-BF16/AMX too. The bf16 branch has its own tests, which set "1" or
# patch hfpipe.hardware, so both branches run on every machine.
os.environ.setdefault("HFPIPE_FAST_BF16", "0")

import hfpipe  # noqa: E402,F401  (first: quiets optional libraries' import-time warnings)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def run_until_killed(cmd: list[str], ready: Path, env: dict | None = None, timeout: float = 240) -> None:
    """Run ``cmd`` and SIGKILL it and every process it started as soon as ``ready`` exists (a checkpoint's
    trainer_state.json), as a crash would; fails if it ends first or ``ready`` does not appear within ``timeout``
    seconds. The descendants are killed one by one: torchrun starts each rank of an ``accelerate launch`` in a
    session of its own (torch/distributed/elastic/multiprocessing/subprocess_handler), so killing the launcher's
    process group would leave the ranks training."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    while not ready.is_file():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline, f"no {ready} within {timeout} s"
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    for p in [*children, psutil.Process(proc.pid)]:
        p.kill()
    psutil.wait_procs(children, timeout=30)
    proc.wait()


@pytest.fixture
def kill_when_ready():
    """:func:`run_until_killed`, for a test that crashes a training run on purpose."""
    return run_until_killed


def import_script(path: str | Path, name: str | None = None) -> ModuleType:
    """Import a script by its path (relative to the repository: ``"recipes/pretrain.py"``) as module ``name``
    (default: the file's stem), registered in ``sys.modules``: dataclasses and pickle look their module up there."""
    path = REPO / path
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@pytest.fixture
def load_script(monkeypatch):
    """``load_script("benchmarks/bench_model.py")``: `import_script` for one test; its ``sys.modules`` entry and
    ``sys.path`` (which some scripts extend) are restored after it."""
    monkeypatch.setattr(sys, "path", list(sys.path))

    def load(path: str | Path, name: str | None = None) -> ModuleType:
        name = name or Path(path).stem
        monkeypatch.setitem(sys.modules, name, None)  # remembers what was there, for the undo
        return import_script(path, name)

    return load


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(
                f"reference data missing at {SHARED_DATA}; CI must run with ../shared beside the repo"
            )
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models only lose to thread synchronisation (badly so on a busy 2-core machine): use one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def hfpipe_wheel(tmp_path_factory) -> Path:
    """hfpipe built as a wheel, from a copy of the checkout (building writes build/ and *.egg-info beside it)."""
    root = tmp_path_factory.mktemp("wheel-build")
    source = root / "source"
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".git", "build", "work", "outputs", "*.egg-info")
    )
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(root / "dist"), str(source)], check=True, timeout=600)  # fmt: skip
    return next((root / "dist").glob("hfpipe-*.whl"))
