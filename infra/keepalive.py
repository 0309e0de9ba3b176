"""A thread-safe pool of kept-alive HTTP/1.1 connections to one origin, on the standard
library's http.client: the workers' outbound calls (the payment gateway, the callbacks).

Measured on this machine (docs/performance.md, "The workers' HTTP on http.client"): a small
POST to a local server costs about 230 µs of user CPU through urllib3's pool and 100 µs
through http.client, whose request is also one send where urllib3's is two (headers, then
body). What urllib3 gave us that matters is kept here: a connection is reused only if the
server has not closed it meanwhile (checked before each request, as urllib3 does), at most
`maxsize` idle connections are kept, no retries, no redirects, no proxy from the
environment (http.client has none of them). One timeout bounds the connect and each wait
for the answer's bytes, and at most `max_body` bytes of an answer are read: a server cannot
make a worker hold an unbounded body in memory. Imports nothing from Django.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
from dataclasses import dataclass
from functools import cache
from typing import Final

# Everything a request can raise when no usable answer came: refused, reset, timed out
# (OSError), or an answer that is not HTTP (http.client.HTTPException).
TRANSPORT_ERRORS: Final = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Answer:
    """What the server answered: status, headers (their `get` ignores case) and the body;
    `whole` is False when the body was longer than the pool's `max_body` (`body` then holds
    its first `max_body` bytes and the connection was closed, not reused)."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    whole: bool = True


_tls_lock = threading.Lock()


@cache
def _tls_made() -> ssl.SSLContext:
    return ssl.create_default_context()


def tls_context() -> ssl.SSLContext:
    """One verifying TLS context (the system's CAs, the name checked) for the process, made
    on first use: loading the CAs costs tens of milliseconds, and the first calls come from
    a whole thread pool at once."""
    with _tls_lock:
        return _tls_made()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """The idle connection was closed by the server (or has unread bytes, which an idle one
    must not): readable now, without waiting."""
    if conn.sock is None:
        return True
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(0))


class KeepAlivePool:
    """Connections to `host`:`port`, over TLS (tls_context) when `https`, made by `connection`
    (by default http.client's class for the scheme; or a subclass that checks where it
    connects). Safe to share between threads."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        maxsize: int,
        https: bool = False,
        connection: type[http.client.HTTPConnection] | None = None,
        max_body: int = 1 << 20,
    ) -> None:
        self._host, self._port, self._timeout, self._https = host, port, timeout, https
        self._max_body = max_body
        self._connection = connection or (
            http.client.HTTPSConnection if https else http.client.HTTPConnection
        )
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def request(
        self, method: str, path: str, *, body: bytes | None, headers: dict[str, str]
    ) -> Answer:
        """One request, its answer read (up to `max_body` bytes of body); raises one of
        TRANSPORT_ERRORS when none came."""
        conn = self._take()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            # A short read is the body's end (http.client reads until `amt` or the end).
            data = response.read(self._max_body + 1)
        except BaseException:
            conn.close()
            raise
        whole = len(data) <= self._max_body
        if response.will_close or not whole or not response.isclosed():
            conn.close()
        else:
            self._give_back(conn)
        return Answer(response.status, response.headers, data[: self._max_body], whole)

    def _take(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._make()
            if not _dropped(conn):
                return conn
            conn.close()

    def _make(self) -> http.client.HTTPConnection:
        if self._https:
            return self._connection(  # type: ignore[call-arg]
                self._host, self._port, timeout=self._timeout, context=tls_context()
            )
        return self._connection(self._host, self._port, timeout=self._timeout)

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections (one in use is closed when its request ends badly, or
        kept by whoever gives it back after this)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
