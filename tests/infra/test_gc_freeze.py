"""Each web worker freezes the objects of the loaded application (infra/server.py,
WEB_GC_FREEZE), so that Python's full garbage collections stop walking them: about 6 % of the
web tier's CPU under load before (docs/performance.md)."""

from __future__ import annotations

import gc
import re
import sys
from pathlib import Path

import pytest
from django.conf import settings

from infra import server
from tests import stack
from tests.waiting import wait_until


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the session collects as it did


def test_freezing_leaves_the_full_collection_only_what_is_made_afterwards(unfrozen: None) -> None:
    # given: this process, with Django and the project loaded
    gc.collect()
    walked_before = len(gc.get_objects(generation=2))
    # when
    frozen = server.freeze_loaded_app()
    # then: what a full collection walks is no longer the whole application (all of it but
    # a few objects: in the whole suite's process, 7 of 369,087 were freed between the two
    # counts once)
    assert walked_before > 50_000
    assert frozen >= 0.999 * walked_before
    assert len(gc.get_objects(generation=2)) < walked_before / 100
    assert "orders.api.views" in sys.modules  # the views are loaded before, not after
    # and objects made later are still collected: a cycle is freed by a full collection
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


def _loaded(log_path: Path) -> tuple[list[int], int]:
    """(objects frozen by each worker that froze, workers that loaded without freezing)."""
    text = log_path.read_text(errors="replace")
    frozen = [int(n) for n in re.findall(r"froze (\d+) objects of the loaded application", text)]
    return frozen, text.count("left the loaded application unfrozen")


@pytest.mark.parametrize("freeze", ["true", "false"])
def test_every_gunicorn_worker_freezes_the_loaded_application(
    freeze: str, worker_env: dict[str, str], log_dir: Path
) -> None:
    # given
    log_path = log_dir / f"gunicorn-gc-freeze-{freeze}.log"
    log_path.write_bytes(b"")
    env = {
        **worker_env,
        "REDIS_URL": settings.REDIS_URL,
        "PAYMENT_GATEWAY_URL": "http://127.0.0.1:9",
        "WEB_GC_FREEZE": freeze,
    }
    # when
    _, process = stack.start_web(log_path, env=env, workers=2)

    def both_loaded() -> tuple[list[int], int] | None:
        frozen, unfrozen = _loaded(log_path)
        return (frozen, unfrozen) if len(frozen) + unfrozen >= 2 else None

    try:
        frozen, unfrozen = wait_until(both_loaded, what="both workers to load the application")
    finally:
        stack.stop(process)
    # then: both workers froze the loaded application, or, switched off, neither did
    if freeze == "true":
        assert (len(frozen), unfrozen) == (2, 0)
        assert min(frozen) > 50_000
    else:
        assert (frozen, unfrozen) == ([], 2)
