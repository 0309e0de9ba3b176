"""`python -m bench.load`: the load generator's process (the package's docstring says how)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys

import aiohttp
from aiohttp import web

import bench.load
from bench.load.generator import LoadGenerator
from bench.load.jobs import JsonDict

# What the generator keeps (every order's request, answer and callbacks) lives until the run
# ends, and Python's full collections walk all of it: 1.7 s at 2 M orders, a pause of the
# callback receiver that showed as the soak's late p99 spikes (docs/soak.md, "Two million
# orders with the yardstick"). Frozen objects are left out of every collection.
FREEZE_EVERY_S = 30.0


async def freeze_kept_records(every_s: float = FREEZE_EVERY_S) -> None:
    """Every `every_s`, collect the young generations and freeze what survived, so a full
    collection walks only what was made since the last freeze."""
    while True:
        await asyncio.sleep(every_s)
        gc.collect(1)
        gc.freeze()


async def serve(args: argparse.Namespace) -> None:
    gen = LoadGenerator(
        base_url=args.base_url,
        api_key=args.api_key,
        callback_url=f"http://{args.callback_host}:{args.callback_port}/cb",
        slug=args.slug,
    )
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/cb", gen.on_callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.callback_host, args.callback_port, backlog=2048).start()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    gen.session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _answer({"ready": True})
    freezer = asyncio.create_task(freeze_kept_records())
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command.get("cmd") == "quit":
                _answer({"bye": True})
                break
            try:
                _answer(await gen.handle(command))
            except Exception as exc:  # answered, so the orchestrator can report it
                _answer({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        freezer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await freezer
        await gen.session.close()
        await runner.cleanup()


def _answer(payload: JsonDict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=bench.load.__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--callback-port", type=int, required=True)
    parser.add_argument("--slug", required=True)
    parser.add_argument(
        "--callback-host",
        default="127.0.0.1",
        help="the receiver's address, bound and sent in each order (a cluster's hosts in "
        "their own network namespaces reach it on their bridge's address)",
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
