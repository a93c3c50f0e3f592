"""Fixtures of the preference tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pref_fixtures import one_torch_thread  # noqa: E402, F401
