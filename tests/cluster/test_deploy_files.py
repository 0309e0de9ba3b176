"""deploy/haproxy.cfg, its 429 answer and deploy/pgbouncer.ini, as the cluster runs them
(devtools/cluster.py): HAProxy accepts the rendered file, its refusal is the API's own
`429 overloaded` (config/server.py, API.md), and PgBouncer pools per transaction without
ignoring a connect-time option (docs/pgbouncer.md)."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
from pathlib import Path

from devtools.cluster import HAPROXY_CFG, PGBOUNCER_INI, SERVERS_MARKER

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
