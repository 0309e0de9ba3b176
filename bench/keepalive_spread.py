"""How a keep-alive pool's connections land on gunicorn's processes:
`python -m bench.keepalive_spread [--connections 4] [--seconds 4] [--runs 4] [--caps 0,100]`.

For each cap of requests per connection (WEB_KEEPALIVE_REQUESTS; 0, no cap, is the behaviour
before 2026-12-06), alternately, `--runs` times: a fresh gunicorn of two processes as
production runs it (config/gunicorn.conf.py, our worker class), then `--connections` kept-alive
connections opened together, each sending its next GET as soon as the last is answered (an
unauthenticated API GET: Django and DRF answer 401, no database), for `--seconds`. Prints each
process's share of the CPU the processes used, from /proc (docs/performance.md, "Keep-alive").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import tempfile
import time

import aiohttp
import httpx
import psutil

from devtools import processes

PATH = "/api/v1/campaigns/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def keep_sending(url: str, connections: int, seconds: float) -> tuple[int, int]:
    """(requests answered, connections opened) by a pool of `connections`."""
    opened = answered = 0

    async def made(*_: object) -> None:
        nonlocal opened
        opened += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(made)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:

        async def loop(until: float) -> None:
            nonlocal answered
            while time.monotonic() < until:
                async with session.get(url) as answer:
                    await answer.read()
                answered += 1

        until = time.monotonic() + seconds
        await asyncio.gather(*(loop(until) for _ in range(connections)))
    return answered, opened


def one_run(cap: int, connections: int, seconds: float, log: str) -> str:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.test"),
        "WEB_KEEPALIVE_REQUESTS": str(cap),
    }
    argv = processes.gunicorn_argv(f"127.0.0.1:{port}", "-w", "2")
    with open(log, "ab") as out:
        arbiter = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        for _ in range(300):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(0.5)  # both processes up and idle
        workers = psutil.Process(arbiter.pid).children()

        def cpu() -> list[float]:
            return [sum(w.cpu_times()[:2]) for w in workers]

        before = cpu()
        answered, opened = asyncio.run(keep_sending(url, connections, seconds))
        spent = [after - b for after, b in zip(cpu(), before, strict=True)]
    finally:
        arbiter.terminate()
        arbiter.wait()
    total = sum(spent) or 1.0
    shares = " / ".join(f"{100 * s / total:.0f} %" for s in spent)
    return (
        f"cap {cap:>3}: {answered} requests on {opened} connections; "
        f"CPU {' / '.join(f'{s:.2f}' for s in spent)} s = {shares}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--caps", default="0,100")
    args = parser.parse_args()
    caps = [int(c) for c in args.caps.split(",")]
    log = os.path.join(tempfile.gettempdir(), "keepalive-spread-gunicorn.log")
    print(f"{args.connections} keep-alive connections, {args.seconds:g} s; gunicorn log {log}")
    for _ in range(args.runs):
        for cap in caps:
            print(one_run(cap, args.connections, args.seconds, log), flush=True)


if __name__ == "__main__":
    main()
