"""The web server's worker: gunicorn's threaded worker with a front door that sheds load.

`gunicorn config.wsgi -c config/gunicorn.conf.py` runs it. Why not the sync worker: a sync
worker takes one connection at a time and leaves the rest in the kernel's listen queue, where
nothing can answer them; under a peak they are served after the chatbot gave up (measured:
200 orders/s offered against 50/s of capacity gave 1,417 time-outs and not one 429). This
worker accepts every connection at once, so each request's wait is visible to us, and then:

- **Sheds on queue time (CoDel).** A request that waited in the worker's queue longer than
  its budget is answered `429 overloaded` with `Retry-After` before Django sees it. The
  budget is WEB_QUEUE_TIMEOUT_MS normally, and the shorter WEB_QUEUE_TIMEOUT_BUSY_MS when
  the queue has not been empty for WEB_QUEUE_INTERVAL_MS: a standing queue is drained fast,
  a brief burst is absorbed (Facebook, "Fail at Scale": controlled delay). The deeper the
  overload, the shorter still: once more than WEB_SHED_HEAVY_SHARE of the last second's
  requests were refused, a standing queue gets WEB_QUEUE_TIMEOUT_SHEDDING_MS. Just past
  capacity few are refused and a longer budget takes in what the pipeline can pay; far past
  it every request served is CPU taken from refusing the rest (and from the main thread,
  which accepts), so the door serves less to stay answering.
- **Bounds what it holds.** With WEB_MAX_WAITING requests already waiting for a thread, the
  next API request is answered 429 by the main thread itself, at once, and its connection
  closed: a refusal never waits in the queue it would make longer.
- **Refuses cheaply.** A refusal is gunicorn's own parse of the request line and headers
  plus one pre-built answer: no Django, no database, no Redis (the count of refusals goes to
  Redis once a second, for the admin's backlog page).
- **Answers its own errors in the contract's JSON**: a request line or header over gunicorn's
  limits is a JSON 400/431, and a body announced larger than API_MAX_BODY_BYTES is a JSON 400
  (`invalid`, as docs/integrator-guide.md has it) sent before the body is read, then the
  body is read and dropped for a moment (a "lingering close"), so that the client, still
  sending, sees the answer instead of a reset.

Only API requests are shed: the admin, health checks and static files are always served.

Once the application is loaded, the worker imports every URLconf and view module and freezes
what it has (`gc.freeze`, WEB_GC_FREEZE): Python's full collections then leave alone the
116,000 or so objects that live as long as the process (modules, classes, the URL patterns,
settings), which every full collection walked before (docs/performance.md, "The web layer on
the hot endpoints").

A kept-alive connection carries WEB_KEEPALIVE_REQUESTS requests; the last one's answer says
`Connection: close`, so that a client's pool, reconnecting, spreads over the processes (a
kept-alive connection never leaves the process that accepted it).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import selectors
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

from infra import metrics
from infra.paths import API_PREFIX

FLUSH_SECONDS = 1.0
ACCEPT_BATCH = 64  # connections taken per readiness of the listening socket
LINGER_SECONDS = 3.0
LINGER_BYTES = 64 * 1024 * 1024


def _answer(status: str, body: dict[str, Any], *, close: bool, extra: str = "") -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        f"{extra}"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode("latin-1") + payload


class FrontDoor:
    """The admission state of one worker process: how many requests wait, since when the
    queue has not been empty, how many were shed. Thread-safe; every call is O(1)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        busy_timeout_s: float,
        shedding_timeout_s: float,
        heavy_share: float,
        interval_s: float,
        max_waiting: int,
        retry_after_s: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self.busy_timeout_s = busy_timeout_s
        self.shedding_timeout_s = shedding_timeout_s
        self.heavy_share = heavy_share
        self.interval_s = interval_s
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self.waiting = 0
        self.last_empty = clock()
        self.shed = 0
        self.unflushed = 0
        # The share of requests refused, judged per second: counts of the current second, and
        # whether the last complete one refused more than heavy_share of its requests.
        self._second_start = self.last_empty
        self._second_seen = 0
        self._second_shed = 0
        self.heavy = False
        body = {
            "error": "overloaded",
            "detail": "The service is at capacity; retry after the given number of seconds.",
            "retry_after": retry_after_s,
        }
        extra = f"Retry-After: {retry_after_s}\r\n"
        self.refusal = _answer("429 Too Many Requests", body, close=False, extra=extra)
        self.refusal_close = _answer("429 Too Many Requests", body, close=True, extra=extra)

    def full(self) -> bool:
        """As many requests wait for a thread as the bound allows: refuse the next at once."""
        return self.waiting >= self.max_waiting

    def arrived(self) -> None:
        """A request is queued for a thread."""
        with self._lock:
            if self.waiting == 0:
                self.last_empty = self._clock()
            self.waiting += 1

    def started(self, queued_at: float) -> bool:
        """A thread picked the request up. False: it waited past its budget; refuse it."""
        now = self._clock()
        with self._lock:
            self.waiting -= 1
            standing = now - self.last_empty > self.interval_s
            if self.waiting == 0:
                self.last_empty = now
            self._count(now, seen=1)
            heavy = self.heavy
        budget = self.timeout_s
        if standing:
            budget = self.shedding_timeout_s if heavy else self.busy_timeout_s
        return now - queued_at <= budget

    def refused(self, *, unseen: bool = False) -> None:
        """A request was answered 429. `unseen`: refused by the main thread, so never started."""
        with self._lock:
            self.shed += 1
            self.unflushed += 1
            self._count(self._clock(), seen=int(unseen), shed=1)
        metrics.refusal("overloaded", "shed")  # answered before Django: counted here

    def _count(self, now: float, *, seen: int, shed: int = 0) -> None:
        """Add to this second's counts (under the lock); on a new second, judge the last one."""
        elapsed = now - self._second_start
        if elapsed >= 1.0:
            # A second with nothing in between it and now is judged; a gap of quiet is not heavy.
            last = self._second_seen if elapsed < 2.0 else 0  # noqa: PLR2004
            self.heavy = last > 0 and self._second_shed > self.heavy_share * last
            self._second_start = now
            self._second_seen = self._second_shed = 0
        self._second_seen += seen
        self._second_shed += shed

    def take_unflushed(self) -> int:
        with self._lock:
            count, self.unflushed = self.unflushed, 0
        return count


class ApiWorker(ThreadWorker):
    """gunicorn's gthread worker with the FrontDoor in front of Django (see the module)."""

    door: FrontDoor
    max_body: int

    def load_wsgi(self) -> None:
        super().load_wsgi()
        from django.conf import settings  # noqa: PLC0415  (configured by the app just loaded)

        self.door = FrontDoor(
            timeout_s=settings.WEB_QUEUE_TIMEOUT_MS / 1000,
            busy_timeout_s=settings.WEB_QUEUE_TIMEOUT_BUSY_MS / 1000,
            shedding_timeout_s=settings.WEB_QUEUE_TIMEOUT_SHEDDING_MS / 1000,
            heavy_share=settings.WEB_SHED_HEAVY_SHARE,
            interval_s=settings.WEB_QUEUE_INTERVAL_MS / 1000,
            max_waiting=settings.WEB_MAX_WAITING,
            retry_after_s=settings.WEB_SHED_RETRY_AFTER_SECONDS,
        )
        self.max_body = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        self.keepalive_requests = settings.WEB_KEEPALIVE_REQUESTS
        self._flushed_at = time.monotonic()
        if settings.WEB_GC_FREEZE:
            self.log.info("froze %d objects of the loaded application", freeze_loaded_app())
        else:
            self.log.info("left the loaded application unfrozen (WEB_GC_FREEZE off)")

    # --- stopping --------------------------------------------------------------------------------

    def handle_quit(self, sig: int, frame: Any) -> None:
        """SIGINT/SIGQUIT: stop now, once. A stop often comes twice (a terminal's Ctrl-C
        reaches the worker and its arbiter, which then sends SIGQUIT of its own), and Python
        runs a handler between any two bytecodes of the main thread, inside the first stop
        too: gthread's handler then re-entered `ThreadPoolExecutor.shutdown` while that held
        its lock, and the worker hung for good, keeping the port (docs/operations.md,
        "Stopping and restarting"). Once a stop has begun (`alive` is False: a quit, SIGTERM's
        graceful stop that the main loop carries out, or an orphaned worker leaving its
        loop), a quit does nothing; the arbiter's SIGKILL after its graceful timeout stays
        the last word."""
        if not self.alive:
            return
        # Set before anything that can be interrupted: a nested quit now returns at once.
        self.alive = False
        super().handle_quit(sig, frame)

    def is_parent_alive(self) -> bool:
        """An orphaned worker leaves its loop and stops: that is a stop begun as well, so a
        signal arriving now must not start a second one."""
        if super().is_parent_alive():
            return True
        self.alive = False
        return False

    # --- queueing ------------------------------------------------------------------------------

    def accept(self, server: Any, listener: socket.socket) -> None:
        """Take every connection the kernel holds, not one per turn of the loop as gthread
        does: under a burst the rest would wait unseen in the listen queue, where no budget
        applies and nothing can answer them."""
        for _ in range(ACCEPT_BATCH):
            if self.nr_conns >= self.worker_connections:
                return
            try:
                sock, client = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                    return
                raise
            conn = TConn(self.cfg, sock, client, server)
            self.nr_conns += 1
            with self._lock:
                self.poller.register(
                    conn.sock,
                    selectors.EVENT_READ,
                    partial(self.on_client_socket_readable, conn),
                )

    def enqueue_req(self, conn: Any) -> None:
        """The main thread, when a connection has a request: queue it for a thread, or, past
        the bound on waiting, refuse it here and now (a refusal must not wait in that queue)."""
        if self.door.full() and self._refuse_in_main_thread(conn):
            return
        conn.queued_at = time.monotonic()
        self.door.arrived()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> tuple[bool, Any]:
        conn.shed = not self.door.started(conn.queued_at)
        return super().handle(conn)

    def handle_request(self, req: Any, conn: Any) -> bool:
        path = req.path or ""
        if path.startswith(API_PREFIX):
            if conn.shed:
                self.door.refused()
                close = req.should_close()
                conn.sock.sendall(self.door.refusal_close if close else self.door.refusal)
                return not close
            if _announced_length(req) > self.max_body:
                self._refuse_large_body(conn)
                return False
        # A keep-alive connection's next request is judged on its own wait.
        conn.shed = False
        conn.served = getattr(conn, "served", 0) + 1
        if self.keepalive_requests and conn.served >= self.keepalive_requests:
            # Its last: the answer says `Connection: close`, and the client's next connection
            # goes to whichever process accepts first, the least busy as a rule; so a pool's
            # kept-alive connections spread over the processes (docs/performance.md).
            req.force_close()
        return super().handle_request(req, conn)

    def notify(self) -> None:
        """The main loop's heartbeat (several times a second under load): also pass the count
        of refusals to Redis, at most once a second."""
        super().notify()
        now = time.monotonic()
        if now - self._flushed_at >= FLUSH_SECONDS:
            self._flushed_at = now
            count = self.door.take_unflushed()
            if count:
                from infra import fast  # noqa: PLC0415  (Django is loaded by now)

                fast.shed_record(count)

    # --- the server's own answers, in the contract's JSON ---------------------------------------

    def _refuse_in_main_thread(self, conn: Any) -> bool:
        """Answer an API request 429 without a thread and close its connection. The request
        line is peeked at, not read, so anything else (the admin, a health check) and a
        request whose bytes gunicorn already buffered are left to the normal path."""
        try:
            head = conn.sock.recv(1024, socket.MSG_PEEK)  # non-blocking until conn.init()
        except OSError:
            return False
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) < 2 or not parts[1].startswith(API_PREFIX.encode()):  # noqa: PLR2004
            return False
        try:
            while conn.sock.recv(65536):  # the request, so that closing sends no reset
                pass
        except OSError:
            pass  # nothing more to read now (EAGAIN), or the client left
        with contextlib.suppress(OSError):
            conn.sock.send(self.door.refusal_close)
        self.door.refused(unseen=True)
        self.nr_conns -= 1
        conn.close()
        return True

    def _refuse_large_body(self, conn: Any) -> None:
        # docs/integrator-guide.md: an oversized body is malformed input, 400 `invalid` with
        # `fields`, as Django's own check answers bodies that do not announce their length.
        too_large = f"The body is larger than {self.max_body} bytes."
        body = {
            "error": "invalid",
            "detail": "The request is not valid.",
            "fields": {"body": [too_large]},
        }
        conn.sock.sendall(_answer("400 Bad Request", body, close=True))
        _linger(conn.sock)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status, code, detail = _error_status(exc)
        if status >= 500:  # noqa: PLR2004
            self.log.exception("Error handling request")
        else:
            self.log.warning("Invalid request from %s: %s", (addr or ("",))[0], exc)
        try:
            client.sendall(
                _answer(status_line(status), {"error": code, "detail": detail}, close=True)
            )
        except OSError:
            self.log.debug("Failed to send error message.")


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


def freeze_loaded_app() -> int:
    """Load what the first request would load, then move every object alive now out of the
    collector's generations; returns how many objects are frozen. Objects made later are
    collected as before, and frozen ones are still freed by reference counting."""
    from django.urls import get_resolver  # noqa: PLC0415  (Django is set up by now)

    get_resolver().url_patterns  # noqa: B018  (imports every URLconf and the views they name)
    gc.collect()  # garbage made while loading is freed, not frozen
    gc.freeze()
    return gc.get_freeze_count()


def status_line(status: int) -> str:
    return f"{status} {_REASONS[status]}"


def _error_status(exc: BaseException) -> tuple[int, str, str]:
    """What gunicorn's own refusal means, as (status, error code, detail)."""
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return 431, "header_too_large", "A request header, or all of them, is too large."
    if isinstance(exc, http_errors.LimitRequestLine):
        return 400, "invalid", "The request line (method and URL) is too long."
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return 501, "not_implemented", "That transfer coding is not supported."
    if isinstance(exc, http_errors.ForbiddenProxyRequest):
        return 403, "forbidden", "Request forbidden."
    if isinstance(exc, http_errors.ParseException | ValueError):
        return 400, "invalid", "The request is not valid HTTP."
    return 500, "server_error", "Something went wrong on our side."


def _announced_length(req: Any) -> int:
    for name, value in req.headers:
        if name == "CONTENT-LENGTH":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _linger(sock: socket.socket) -> None:
    """Stop sending, then read and drop what the client still sends for a moment: closing a
    socket with unread data makes the kernel send a reset, and the client would lose the
    answer it has not read yet."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.5)
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        while time.monotonic() < deadline and drained < LINGER_BYTES:
            chunk = sock.recv(65536)
            if not chunk:
                break
            drained += len(chunk)
    except OSError:
        pass
