"""The sandbox as a process: the aiohttp application and its routes, serving until a stop
signal, and the command line shared with ``manage.py run_sandbox_gateway``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Final

from aiohttp import web

from sandbox_gateway.handlers import Handler, SandboxGateway
from sandbox_gateway.ledger import (
    CONFIG_FIELDS,
    InvalidInputError,
    SandboxConfig,
    config_update,
)

logger = logging.getLogger("sandbox_gateway")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8765
# The published sandbox key, not a secret: the sandbox guards nothing of value.
DEFAULT_KEY: Final = "sandbox-key"
KEY_ENV_VAR: Final = "PAYMENT_GATEWAY_KEY"


def build_app(gateway: SandboxGateway) -> web.Application:
    """The aiohttp application serving ``gateway``."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await gateway.observe(request, handler)

    app = web.Application(middlewares=[observe])
    app.router.add_post("/v1/charges", gateway.charge_create)
    app.router.add_get("/v1/charges", gateway.charge_list, allow_head=False)
    app.router.add_post("/v1/refunds", gateway.refund_create)
    app.router.add_get("/_sandbox/config", gateway.config_get, allow_head=False)
    app.router.add_post("/_sandbox/config", gateway.config_set)
    app.router.add_post("/_sandbox/reset", gateway.reset)
    app.router.add_get("/_sandbox/ledger", gateway.ledger_get, allow_head=False)
    return app


# --- running -----------------------------------------------------------------------------


async def serve(
    *,
    host: str,
    port: int,
    api_key: str,
    config: SandboxConfig,
    announce: Callable[[str], None],
) -> None:
    """Serve until SIGTERM or SIGINT, then close cleanly.

    ``announce`` gets one line with the URL once the port is bound.
    """
    gateway = SandboxGateway(api_key=api_key, config=config)
    # handler_cancellation=False: a client that gives up must not undo a charge in
    # progress, exactly as with a real provider. access_log=None: one line per request
    # would swamp a load test.
    runner = web.AppRunner(
        build_app(gateway), handler_cancellation=False, access_log=None, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        announce(
            f"sandbox payment gateway listening on http://{bound_host}:{bound_port} "
            f"config={json.dumps(asdict(config))}"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    announce("sandbox payment gateway stopped")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative_number(text: str) -> float:
    # An int when the text is one, so the config reads back as 20, not 20.0.
    try:
        value: float = int(text)
    except ValueError:
        value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options shared by ``main`` and the management command."""
    defaults = SandboxConfig()
    add = parser.add_argument
    add("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})")
    add("--port", type=_non_negative_int, default=DEFAULT_PORT, help="port (default %(default)s)")
    add(
        "--key",
        default=os.environ.get(KEY_ENV_VAR, DEFAULT_KEY),
        help=f"API key clients must send as Bearer (default ${KEY_ENV_VAR} or {DEFAULT_KEY})",
    )
    add(
        "--latency-ms",
        type=_non_negative_number,
        default=defaults.latency_ms,
        help="time each answer takes, ms (default %(default)s)",
    )
    add(
        "--latency-jitter-ms",
        type=_non_negative_number,
        default=defaults.latency_jitter_ms,
        help="latency varies uniformly by +/- this many ms (default %(default)s)",
    )
    for name, what in (
        ("decline-rate", "share of charges declined at random"),
        ("error-rate", "share answered 500/502/503 before anything is recorded"),
        ("error-after-charge-rate", "share answered 500 after the charge is recorded"),
        ("drop-rate", "share whose answer is dropped (connection closed) after recording"),
    ):
        add(f"--{name}", type=_probability, default=0.0, help=f"{what} (0-1, default 0)")
    add(
        "--quota-rps",
        type=_non_negative_number,
        default=defaults.quota_rps,
        help="requests per second allowed on /v1/, 0 = unlimited (default 0)",
    )
    add(
        "--quota-burst",
        type=_non_negative_int,
        default=defaults.quota_burst,
        help="requests the quota lets through at once, 0 = one second's worth (default 0)",
    )


def config_from_options(options: Mapping[str, object]) -> SandboxConfig:
    """Build the start-up config from parsed options (argparse or Django, same dests).

    Raises InvalidInputError when a value is out of range.
    """
    return config_update(SandboxConfig(), {name: options[name] for name in CONFIG_FIELDS})


def run(
    *, host: str, port: int, key: str, config: SandboxConfig, announce: Callable[[str], None]
) -> None:
    """Serve until a stop signal; blocks. ``announce`` receives the start-up line."""
    asyncio.run(serve(host=host, port=port, api_key=key, config=config, announce=announce))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m sandbox_gateway --help``."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox_gateway",
        # The package's docstring, which says what the sandbox does, is the --help text.
        description=sys.modules["sandbox_gateway"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_options(vars(args))
    except InvalidInputError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run(host=args.host, port=args.port, key=args.key, config=config, announce=logger.info)
