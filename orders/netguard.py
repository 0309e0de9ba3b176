"""Where callbacks may go: the server-side request forgery (SSRF) rules, applied twice.

At intake (`orders.api.serializers`) a callback URL naming `localhost` or an IP literal outside
the public internet is refused. A name is not resolved then: what it resolves to can change
(DNS rebinding: public when the order is taken, 127.0.0.1 or 169.254.169.254 when we call).
So the callbacks' HTTP client resolves the name itself at connect time, checks every address
against the same rule, and connects to the address it checked, never resolving twice; TLS
still verifies the certificate for the name. `CALLBACK_ALLOW_PRIVATE` (local development and
the tests' receivers) turns both checks off.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx
from django.conf import settings


def address_is_public(address: str) -> bool:
    """An IP address on the public internet: not private, loopback, link-local, multicast,
    reserved or unspecified; an IPv4 address mapped into IPv6 is judged as itself."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_global and not ip.is_multicast


def host_is_private(host: str) -> bool:
    """The intake rule for a URL's host: localhost, or an IP literal that is not public. A
    name is judged when the callback connects (`GuardedBackend`)."""
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address_is_public(host)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the outbound DNS adapter; tests replace it)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class CallbackAddressRefused(httpcore.ConnectError):
    """The name resolved to an address callbacks may not reach."""


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's network backend, resolving and checking before it connects."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if settings.CALLBACK_ALLOW_PRIVATE:
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        refused = [a for a in addresses if not address_is_public(a)]
        if refused or not addresses:
            raise CallbackAddressRefused(
                f"{host} resolves to {', '.join(refused) or 'nothing'}: not a public address"
            )
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"cannot connect to {host}")


def guarded_transport(*, max_connections: int) -> httpx.HTTPTransport:
    """An httpx transport without proxies whose connections go through GuardedBackend."""
    limits = httpx.Limits(max_connections=max_connections)
    transport = httpx.HTTPTransport(trust_env=False, limits=limits)
    # httpx builds its pool with the default backend and takes no other; the pool is rebuilt
    # the way httpx builds it (same TLS context, same limits), with ours.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(),
    )
    return transport
