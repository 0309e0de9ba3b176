"""The load generator's open loop over kept-alive connections (bench/load/generator.py): the
schedule is kept (open loop), and the requests share the pool's few connections; without
`keepalive`, each request has a connection of its own (the worst case)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from bench.load.generator import LoadGenerator

RATE = 200
SECONDS = 1.0


async def offer(keepalive: int) -> tuple[int, int, int]:
    """RATE GETs a second for SECONDS at a local server; (requests served, connections it
    saw, requests the generator recorded as answered)."""
    peers: set[tuple[str, int]] = set()
    served = 0

    async def floor(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        peers.add(request.transport.get_extra_info("peername"))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/bench/floor/get/", floor)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the port it was given
    gen = LoadGenerator(base_url=f"http://127.0.0.1:{port}", api_key="k", callback_url="", slug="s")
    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # as bench/load/__main__.py
    gen.session = aiohttp.ClientSession(connector=connector)
    spec = {
        "phase": "p",
        "kind": "floor_get",
        "mode": "open",
        "keepalive": keepalive,
        "connections": 64,
        "timeout": 5,
        "steps": [{"rate": RATE, "duration": SECONDS}],
    }
    try:
        summary = await gen.run(spec)
    finally:
        await gen.session.close()
        await runner.cleanup()
    assert summary["keepalive"] == keepalive
    return served, len(peers), summary["steps"][0]["answered"]


@pytest.mark.parametrize("keepalive", [0, 4])
def test_the_open_loop_keeps_its_schedule_over_the_pool_it_is_given(keepalive: int) -> None:
    # when
    served, connections, answered = asyncio.run(offer(keepalive))
    # then: every scheduled request sent and answered, over the pool's connections at most,
    # or over one connection each
    assert served == answered == int(RATE * SECONDS)
    if keepalive:
        assert connections <= keepalive
    else:
        assert connections == served
