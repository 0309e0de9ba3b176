"""The package from this checkout's src/ when it is not installed (`pip install -e .` is not
needed to run these tests, also from the repository's root: `make test` runs them)."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import campaign_client  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
