"""The chatbot client from this checkout's clients/python/src, imported, not installed: the
package is meant to be installed on its own by integrators, so the service's environment
(requirements/dev.txt, `make install`) does not carry it, and these tests prove the source
as it is committed. test_python_client_package.py builds the wheel to prove it installs."""

from __future__ import annotations

import sys
from pathlib import Path

CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "python" / "src"

if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))
