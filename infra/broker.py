"""The Redis broker transport, made to survive a malformed message.

kombu's Redis channel decodes each message it pops inside the worker's event loop. A body
that is not JSON, or JSON that is not a message envelope, raises there and stops the whole
worker ("Unrecoverable error"; reported in Celery's tracker since 2012), and the good
messages behind it wait until someone restarts it. Whatever put such a message in a queue
(a broken producer, a hand-typed LPUSH), it is logged and dropped instead: it was already
popped, and it could never have run. What Celery itself can judge (an unknown task name,
arguments a task cannot take) still reaches Celery, which rejects it.

Selected with CELERY_BROKER_TRANSPORT = "infra.broker:Transport"; the URL stays redis://.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Empty

log = logging.getLogger(__name__)

UNREADABLE = (json.JSONDecodeError, UnicodeDecodeError)


def envelope_problem(message: object) -> str | None:
    """Why `message` is not a kombu envelope that the channel can turn into a Message."""
    if not isinstance(message, dict):
        return f"a JSON {type(message).__name__}, not an object"
    properties = message.get("properties")
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        return "no properties with a delivery tag"
    if not isinstance(properties.get("delivery_info") or {}, dict):
        return "delivery_info is not an object"
    if not isinstance(message.get("headers") or {}, dict):
        return "headers are not an object"
    body = message.get("body")
    if body and properties.get("body_encoding") == "base64":
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, TypeError, ValueError):
            return "the body is not base64"
    return None


class Channel(kombu_redis.Channel):
    # log.error, not log.exception: the message is the news, not our stack.
    def _brpop_read(self, **options: Any) -> bool:
        try:
            return super()._brpop_read(**options)
        except UNREADABLE as exc:
            log.error("dropped an unreadable broker message: %s", exc)  # noqa: TRY400
            return True

    def _get(self, queue: str) -> Any:
        try:
            return super()._get(queue)
        except UNREADABLE as exc:
            log.error("dropped an unreadable message from %s: %s", queue, exc)  # noqa: TRY400
            raise Empty() from exc


class Transport(kombu_redis.Transport):
    Channel = Channel

    def _deliver(self, message: Any, queue: str) -> None:
        problem = envelope_problem(message)
        if problem is not None:
            log.error("dropped a malformed message from %s: %s: %.200r", queue, problem, message)
            return
        super()._deliver(message, queue)
