"""infra.keepalive: the workers' HTTP pool keeps connections alive, never reuses one the
server closed, follows no redirect, and raises one of TRANSPORT_ERRORS when no answer came.
Against a real server on 127.0.0.1 (HTTP/1.1, keep-alive)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.keepalive import TRANSPORT_ERRORS, KeepAlivePool


class _Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the answer says close
    connections: list[tuple[str, int]] = []
    bodies: list[bytes] = []
    close_after: bool = False
    hang_up: bool = False  # close after answering, without saying so (a keep-alive time-out)
    delay: float = 0.0
    answer_size: int = 2  # bytes of answer body
    chunked: bool = False  # the body in chunks, its length not given up front

    def setup(self) -> None:
        super().setup()
        _Server.connections.append(self.client_address)

    def do_POST(self) -> None:
        _Server.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        time.sleep(_Server.delay)
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
        else:
            self.send_response(200)
            self.send_header("Retry-After", "3")
        body = b"ok" if _Server.answer_size == 2 else b"x" * _Server.answer_size
        if _Server.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        if _Server.close_after:
            self.send_header("Connection", "close")
        self.end_headers()
        if _Server.chunked:
            for start in range(0, len(body), 300):
                chunk = body[start : start + 300]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        if _Server.hang_up:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    _Server.connections, _Server.bodies = [], []
    _Server.close_after, _Server.hang_up, _Server.delay = False, False, 0.0
    _Server.answer_size, _Server.chunked = 2, False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def pool_for(
    server: ThreadingHTTPServer, timeout: float = 5.0, max_body: int = 1 << 20
) -> KeepAlivePool:
    return KeepAlivePool(
        "127.0.0.1", server.server_address[1], timeout=timeout, maxsize=4, max_body=max_body
    )


def test_requests_one_after_another_share_one_connection(server: ThreadingHTTPServer) -> None:
    # given
    pool = pool_for(server)
    # when
    answers = [pool.request("POST", "/x", body=b"%d" % i, headers={}) for i in range(5)]
    # then: every answer read whole, its headers found whatever their case, one connection
    assert [(a.status, a.body, a.headers.get("retry-after")) for a in answers] == [
        (200, b"ok", "3")
    ] * 5
    assert _Server.bodies == [b"0", b"1", b"2", b"3", b"4"]
    assert len(_Server.connections) == 1


def test_concurrent_requests_keep_at_most_maxsize_idle_connections(
    server: ThreadingHTTPServer,
) -> None:
    # given: more threads than the pool keeps
    _Server.delay = 0.05
    pool = pool_for(server)
    with ThreadPoolExecutor(8) as threads:
        # when
        first = list(
            threads.map(lambda i: pool.request("POST", "/", body=b"", headers={}), range(8))
        )
        opened = len(_Server.connections)
        again = list(
            threads.map(lambda i: pool.request("POST", "/", body=b"", headers={}), range(4))
        )
    # then: the second round found connections kept; nothing beyond maxsize was kept
    assert {a.status for a in first + again} == {200}
    assert opened == 8
    assert len(_Server.connections) == 8
    assert len(pool._idle) == 4


def test_a_connection_the_server_closed_is_not_reused(server: ThreadingHTTPServer) -> None:
    # given: an idle kept connection that the server has since closed
    _Server.hang_up = True
    pool = pool_for(server)
    pool.request("POST", "/", body=b"", headers={})
    assert len(pool._idle) == 1
    time.sleep(0.2)
    # when
    answer = pool.request("POST", "/", body=b"again", headers={})
    # then: a new connection carried it, and the request was sent once
    assert answer.status == 200
    assert _Server.bodies == [b"", b"again"]
    assert len(_Server.connections) == 2


def test_an_answer_that_says_close_closes_the_connection(server: ThreadingHTTPServer) -> None:
    # given
    _Server.close_after = True
    pool = pool_for(server)
    # when
    pool.request("POST", "/", body=b"", headers={})
    pool.request("POST", "/", body=b"", headers={})
    # then
    assert pool._idle == []
    assert len(_Server.connections) == 2


def test_a_redirect_is_answered_not_followed(server: ThreadingHTTPServer) -> None:
    # when
    answer = pool_for(server).request("POST", "/moved", body=b"signed", headers={})
    # then
    assert (answer.status, answer.headers.get("Location")) == (302, "/elsewhere")
    assert _Server.bodies == [b"signed"]


def test_no_answer_in_time_raises_a_transport_error_and_drops_the_connection(
    server: ThreadingHTTPServer,
) -> None:
    # given: a server slower than the timeout
    _Server.delay = 0.5
    pool = pool_for(server, timeout=0.1)
    # when / then
    with pytest.raises(TRANSPORT_ERRORS) as raised:
        pool.request("POST", "/", body=b"", headers={})
    assert isinstance(raised.value, TimeoutError)
    assert pool._idle == []


def test_a_refused_connection_raises_a_transport_error(server: ThreadingHTTPServer) -> None:
    # given: nothing listens on the port any more
    pool = pool_for(server)
    server.shutdown()
    server.server_close()
    # when / then
    with pytest.raises(ConnectionRefusedError):
        pool.request("POST", "/", body=b"", headers={})


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_of_max_body_bytes_is_read_whole_and_its_connection_kept(
    server: ThreadingHTTPServer, chunked: bool
) -> None:
    # given
    _Server.answer_size, _Server.chunked = 1000, chunked
    pool = pool_for(server, max_body=1000)
    # when
    answers = [pool.request("POST", "/", body=b"", headers={}) for _ in range(2)]
    # then
    assert [(a.whole, len(a.body)) for a in answers] == [(True, 1000)] * 2
    assert len(_Server.connections) == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_over_max_body_is_cut_flagged_and_its_connection_closed(
    server: ThreadingHTTPServer, chunked: bool
) -> None:
    # given: answers of 5,000 bytes, 1,000 allowed
    _Server.answer_size, _Server.chunked = 5000, chunked
    pool = pool_for(server, max_body=1000)
    # when
    first = pool.request("POST", "/", body=b"1", headers={})
    second = pool.request("POST", "/", body=b"2", headers={})
    # then: the first 1,000 bytes kept, and the half-read connection never carried another request
    assert (first.status, first.whole, first.body) == (200, False, b"x" * 1000)
    assert (second.status, second.whole) == (200, False)
    assert pool._idle == []
    assert _Server.bodies == [b"1", b"2"]
    assert len(_Server.connections) == 2
