"""Flower against the stack, started the way an operator starts it (`celery -A config
flower`): it sees a real worker, the queue it consumes, and a task it ran (task events on)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from config.celery import app
from tests import stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.pipeline]


@pytest.fixture
def flower(worker_env: dict[str, str], log_dir: Path) -> Iterator[str]:
    port = stack.free_port()
    env = {**worker_env, "FLOWER_UNAUTHENTICATED_API": "true", "CELERY_BROKER_TRANSPORT": "redis"}
    process = stack.start_flower(port, log_dir / "flower.log", env=env)
    yield f"http://127.0.0.1:{port}"
    stack.stop(process)


@pytest.mark.django_db(transaction=True)
def test_flower_sees_workers_queues_and_tasks(
    flower: str, start_worker: Callable[..., object]
) -> None:
    # given: a worker on the maintenance queue, its task events on (the project's default)
    start_worker("maintenance")
    api = httpx.Client(base_url=flower, timeout=10)

    def consumers() -> dict[str, list[str]]:
        workers = api.get("/api/workers", params={"refresh": "1"}).json()
        return {
            name: [q["name"] for q in info.get("active_queues", [])]
            for name, info in workers.items()
        }

    # when: the sweep runs there
    app.send_task("orders.sweep")

    # then
    seen = wait_until(consumers, timeout=20, interval=0.5, what="Flower to see the worker")
    assert any(queues == ["maintenance"] for queues in seen.values()), seen  # type: ignore[union-attr]

    def swept() -> list[dict]:
        tasks = api.get("/api/tasks").json().values()
        return [t for t in tasks if t["name"] == "orders.sweep" and t["state"] == "SUCCESS"]

    assert wait_until(swept, timeout=20, interval=0.5, what="Flower to see the sweep done")
    assert api.get("/broker").status_code == 200  # queue lengths from the broker
