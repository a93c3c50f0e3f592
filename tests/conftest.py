"""Shared test fixtures.

`shared_data` points at ``../shared/data`` (reference data beside the project). In CI
(``CI=true``) a missing directory is a hard failure; elsewhere the tests that need it skip.
"""

import os
from pathlib import Path

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

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
