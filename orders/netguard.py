"""Where callbacks may go: the server-side request forgery (SSRF) rules, applied twice.

At intake (`orders.api.serializers`) a callback URL naming `localhost` or an IP literal outside
the public internet is refused. A name is not resolved then: what it resolves to can change
(DNS rebinding: public when the order is taken, 127.0.0.1 or 169.254.169.254 when we call).
So the callbacks' HTTP client (infra.keepalive's pools, with http.client connection classes of
ours) resolves the name itself at connect time, checks every address against the same rule,
and connects to the address it checked, never resolving twice; TLS still verifies the
certificate for the name.
`CALLBACK_ALLOW_PRIVATE` (local development and the tests' receivers) turns both checks off.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
from collections import OrderedDict
from typing import Final
from urllib.parse import urlsplit

from django.conf import settings

from infra.keepalive import Answer, KeepAlivePool

# Only a callback's status counts; its body is read (so the connection can be reused) up to
# this many bytes, and a connection whose answer is longer is closed instead.
MAX_ANSWER_BYTES: Final = 64 * 1024

# NAT64's well-known prefix (RFC 6052): the IPv4 address is the last 32 bits. A resolver doing
# DNS64 answers a name that has only an IPv4 address with one of these, so a public one must
# pass or an IPv6-only deployment could call no IPv4-only receiver.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# NAT64's local-use prefix (RFC 8215): not reachable from the internet, and where the IPv4
# address sits inside it depends on the prefix length the operator chose, so it is refused whole.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
# IPv4-compatible addresses (RFC 4291, deprecated): ::a.b.c.d. `::` and `::1` are in it too,
# and are judged as 0.0.0.0 and 0.0.0.1, which are not public either.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# IPv4-translated addresses (RFC 2765's stateless translation): ::ffff:0:a.b.c.d.
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_LAST_32_BITS = (_IPV4_COMPATIBLE, _IPV4_TRANSLATED, _NAT64)


def _carried_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses a packet to `ip` is really delivered to, for the IPv6 forms that
    carry one: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), translated (::ffff:0:a.b.c.d),
    NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:aabb:ccdd::) and Teredo (its server, and its client,
    whose address is stored with every bit inverted). Empty for any other address."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if any(ip in network for network in _LAST_32_BITS):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo
    return ()


def address_is_public(address: str) -> bool:
    """An IP address on the public internet: not private, loopback, link-local, multicast,
    reserved or unspecified. An IPv6 address that carries an IPv4 address (`_carried_ipv4`)
    is judged as what it carries, since that is where its packets go: ::127.0.0.1, NAT64's
    64:ff9b::a00:1 or a 6to4 or Teredo address built on 10.0.0.1 reach our own network, yet
    Python's tables call some of them global. The local-use NAT64 prefix is never public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        carried = _carried_ipv4(ip)
        if carried:
            return all(_is_public(v4) for v4 in carried)
    return _is_public(ip)


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Site-local fec0::/10 is deprecated but still routed inside some networks, and Python's
    # tables call it global.
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    return ip.is_global and not ip.is_multicast and not site_local


def host_is_private(host: str) -> bool:
    """The intake rule for a URL's host: localhost, or an IP literal that is not public. A
    name is judged when the callback connects (`guarded_pool`)."""
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


class CallbackAddressRefused(OSError):
    """The name resolved to an address callbacks may not reach."""


def guarded_connect(
    address: tuple[str, int],
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """socket.create_connection, but the host is resolved here, refused unless every address
    is public, and the socket connected to an address that was checked (never resolving
    twice)."""
    host, port = address
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    refused = [a for a in addresses if not address_is_public(a)]
    if refused or not addresses:
        raise CallbackAddressRefused(
            f"{host} resolves to {', '.join(refused) or 'nothing'}: not a public address"
        )
    last: OSError | None = None
    for checked in addresses:
        try:
            return socket.create_connection((checked, port), timeout, source_address)
        except OSError as exc:
            last = exc
    raise OSError(f"cannot connect to {host}: {last}")


def _create_connection(
    address: tuple[str, int],
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    # Decided at connect time, as the check is: CALLBACK_ALLOW_PRIVATE turns it off.
    if settings.CALLBACK_ALLOW_PRIVATE:
        return socket.create_connection(address, timeout, source_address)
    return guarded_connect(address, timeout, source_address)


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._create_connection = _create_connection  # http.client's hook for the socket


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    """TLS still verifies the certificate against the name (server_hostname), whatever
    address the socket was connected to."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._create_connection = _create_connection


class GuardedPools:
    """One keep-alive pool per origin (scheme, host, port), the `max_pools` used last kept,
    each connection through the check above; no proxies (an environment proxy would stand
    between the check and the connection), no retries and no redirects (a redirect could
    point a signed body anywhere). Safe to share between threads."""

    def __init__(self, *, max_connections: int, timeout: float, max_pools: int = 256) -> None:
        self._pools: OrderedDict[tuple[str, str, int], KeepAlivePool] = OrderedDict()
        self._lock = threading.Lock()
        self._max_connections, self._timeout, self._max_pools = (
            max_connections,
            timeout,
            max_pools,
        )

    def request(self, method: str, url: str, *, body: bytes, headers: dict[str, str]) -> Answer:
        """One request to `url`, its whole answer read; raises one of
        infra.keepalive.TRANSPORT_ERRORS when none came (refused here included)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise http.client.InvalidURL(f"not an http(s) URL: {url[:200]}")
        https = parts.scheme == "https"
        origin = (parts.scheme, parts.hostname, parts.port or (443 if https else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return self._pool(origin).request(method, target, body=body, headers=headers)

    def _pool(self, origin: tuple[str, str, int]) -> KeepAlivePool:
        with self._lock:
            pool = self._pools.get(origin)
            if pool is not None:
                self._pools.move_to_end(origin)
                return pool
            scheme, host, port = origin
            https = scheme == "https"
            pool = self._pools[origin] = KeepAlivePool(
                host,
                port,
                timeout=self._timeout,
                maxsize=self._max_connections,
                https=https,
                connection=_GuardedHTTPSConnection if https else _GuardedHTTPConnection,
                max_body=MAX_ANSWER_BYTES,
            )
            evicted = (
                self._pools.popitem(last=False)[1] if len(self._pools) > self._max_pools else None
            )
        if evicted is not None:
            evicted.close()
        return pool


def guarded_pool(*, max_connections: int, timeout: float) -> GuardedPools:
    """The callbacks' HTTP client: GuardedPools."""
    return GuardedPools(max_connections=max_connections, timeout=timeout)
