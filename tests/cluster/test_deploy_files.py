"""deploy/haproxy.cfg, its 429 answer and deploy/pgbouncer.ini, as the cluster runs them
(devtools/cluster.py): HAProxy accepts the rendered file, its refusal is the API's own
`429 overloaded` (infra/server.py; docs/integrator-guide.md, Rate limits and 429), and
PgBouncer pools per transaction without ignoring a connect-time option
(docs/pgbouncer.md)."""

from __future__ import annotations

import configparser
import csv
import io
import json
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from devtools.cluster import HAPROXY_CFG, PGBOUNCER_INI, SERVERS_MARKER
from tests.stack import free_port
from tests.waiting import wait_until

ERRORFILE = HAPROXY_CFG.parent / "haproxy-429.http"


def test_haproxy_accepts_the_file_with_the_cluster_s_server_lines(tmp_path: Path) -> None:
    text = HAPROXY_CFG.read_text()
    markers = [line for line in text.splitlines() if line.strip().startswith(SERVERS_MARKER)]
    assert len(markers) == 1
    rendered = tmp_path / "haproxy.cfg"
    server = "    server h1 127.0.0.1:1\n"
    rendered.write_text(text.replace(markers[0] + "\n", markers[0] + "\n" + server))
    env = {
        **os.environ,
        "HAPROXY_ERRORS_DIR": str(HAPROXY_CFG.parent),
        "HAPROXY_STATS_SOCKET": str(tmp_path / "s.sock"),
        "HAPROXY_BIND": "127.0.0.1:1",
    }
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(rendered)], check=False, env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_haproxy_s_refusal_is_the_api_s_overloaded_answer() -> None:
    head, _, body = ERRORFILE.read_bytes().partition(b"\r\n\r\n")
    status, *fields = head.decode().split("\r\n")
    headers = dict(field.split(": ", 1) for field in fields)
    answer = json.loads(body)
    assert status == "HTTP/1.1 429 Too Many Requests"
    assert headers["Content-Type"] == "application/json"
    assert answer == {
        "error": "overloaded",
        "detail": "The service is at capacity; retry after the given number of seconds.",
        "retry_after": int(headers["Retry-After"]),
    }


def test_pgbouncer_pools_per_transaction_and_loses_no_connect_option() -> None:
    ini = configparser.ConfigParser(comment_prefixes=(";",), inline_comment_prefixes=(";",))
    ini.read(PGBOUNCER_INI)
    section = ini["pgbouncer"]
    assert section["pool_mode"] == "transaction"
    # docs/pgbouncer.md: an ignored `options` would drop the web's lock_timeout silently
    assert "options" not in section.get("ignore_startup_parameters", "")


class _SlowHost(BaseHTTPRequestHandler):
    """A web host that serves one request at a time, each in SERVICE_S: a host at capacity."""

    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path != "/readyz":
            with self.lock:
                time.sleep(SERVICE_S)  # the host's service time, not a wait for an event
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


SERVICE_S = 0.02  # 50 requests a second at most: 5 queued are a 100 ms wait


def _haproxy_before(tmp_path: Path, host_port: int, port: int) -> subprocess.Popen[bytes]:
    text = HAPROXY_CFG.read_text()
    marker = next(line for line in text.splitlines() if line.strip().startswith(SERVERS_MARKER))
    rendered = tmp_path / "haproxy.cfg"
    server = f"    server h1 127.0.0.1:{host_port}\n"
    rendered.write_text(text.replace(marker + "\n", marker + "\n" + server))
    env = {
        **os.environ,
        "HAPROXY_ERRORS_DIR": str(HAPROXY_CFG.parent),
        "HAPROXY_STATS_SOCKET": str(tmp_path / "s.sock"),
        "HAPROXY_STATS_BIND": f"127.0.0.1:{free_port()}",
        "HAPROXY_BIND": f"127.0.0.1:{port}",
        "HAPROXY_SERVER_MAXCONN": "1",
    }
    return subprocess.Popen(["haproxy", "-db", "-f", str(rendered)], env=env)


def _show_stat(path: Path) -> str:
    """HAProxy's `show stat` CSV, from its stats socket."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def test_haproxy_refuses_at_once_what_would_wait_past_the_queue_budget(tmp_path: Path) -> None:
    # given: HAProxy with the deploy file before a host that serves 50 requests a second
    host = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHost)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    port = free_port()
    haproxy = _haproxy_before(tmp_path, host.server_address[1], port)
    url = f"http://127.0.0.1:{port}/api/v1/x"
    try:

        def serving() -> bool:
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False  # not listening yet

        # up, with the host checked healthy and a second of requests served
        wait_until(serving, timeout=10, what="HAProxy to serve")
        for _ in range(40):
            httpx.get(url, timeout=2)

        # when: 150 requests arrive at once, three seconds of the host's work
        def one(_: int) -> tuple[int, float]:
            began = time.monotonic()
            status = httpx.get(url, timeout=10).status_code
            return status, time.monotonic() - began

        with ThreadPoolExecutor(max_workers=150) as pool:
            answers = list(pool.map(one, range(150)))
        stats = _show_stat(tmp_path / "s.sock")
    finally:
        haproxy.terminate()
        haproxy.wait(10)
        host.shutdown()

    # then: most are refused with the API's 429, and by HAProxy's rule (denied requests on
    # the frontend), not after waiting out the queue's budget (100 ms) in its queue
    refused = [took for status, took in answers if status == 429]
    served = [took for status, took in answers if status == 200]
    assert {status for status, _ in answers} <= {200, 429}
    assert len(refused) >= 75, f"{len(refused)} refused of 150"
    assert served, "nothing served"
    frontend = next(
        row
        for row in csv.DictReader(io.StringIO(stats.lstrip("# ")))
        if row["svname"] == "FRONTEND" and row["pxname"] == "api"
    )
    assert int(frontend["dreq"]) >= len(refused) // 2, frontend["dreq"]
