"""The one way Tipline reaches out on a platform's behalf: media downloads, callbacks, webhooks.

A platform chooses the URLs Tipline fetches, so every request is treated as an attempt to turn Tipline
inward. Before any connection:

- only ``http``/``https`` URLs with an ordinary host are taken; numeric hosts in anything but canonical
  dotted-quad or bracketed IPv6 form (``2130706433``, ``0177.0.0.1``, ``0x7f.1``) are refused outright;
- the host is resolved once, and every address it resolves to must be public: loopback, private,
  link-local, CGNAT, multicast, unspecified, documentation and reserved ranges are refused, as are IPv6
  forms that embed such an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo);
- the connection then goes to exactly that checked address (a network backend under httpx does the
  resolving and checking), while the Host header, TLS SNI and certificate check keep the hostname;
- redirects are followed by hand, each hop checked the same way, at most ``MAX_REDIRECTS`` of them.

Loopback servers a test or local stack runs on purpose are exempt only as exact ``address:port`` pairs
(``Settings.egress_private_exemptions``), so every other port on the machine stays refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpcore
import httpx

__all__ = [
    "MAX_REDIRECTS",
    "Answer",
    "EgressClient",
    "EgressRefused",
    "EgressTimeouts",
    "Resolver",
    "forbidden_address",
    "host_allowed",
    "parse_exemption",
]

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges no platform-chosen URL may reach, beyond what ``is_global`` already excludes (kept explicit, so the
# list does not depend on the Python version's idea of "global").
_FORBIDDEN_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "::/96", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
    "2001::/23", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
# Hosts made only of digits, dots and hex prefixes: what inet_aton would read as an IPv4 address.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*\.?$", re.IGNORECASE)
_CANONICAL_IPV4 = re.compile(r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]"
                             r"|[1-9]?[0-9])){3}$")


class EgressRefused(Exception):
    """A request Tipline will not make. ``reason`` names the rule broken, never the host, address or port, so it
    is safe to log; what a reviewer sees is only ever a generic sentence."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# ------------------------------------------------------------------------------------------- rules


def forbidden_address(address: IPAddress) -> bool:
    """True if ``address`` is anything but a public unicast address, embedded IPv4 forms included."""
    if address.version == 6:
        assert isinstance(address, ipaddress.IPv6Address)
        for embedded in _embedded_ipv4(address):
            if forbidden_address(embedded):
                return True
    if any(address in network for network in _FORBIDDEN_NETWORKS if network.version == address.version):
        return True
    return not address.is_global or address.is_multicast


def _embedded_ipv4(address: ipaddress.IPv6Address) -> Iterable[ipaddress.IPv4Address]:
    if address.ipv4_mapped is not None:
        yield address.ipv4_mapped
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield from address.teredo
    packed = address.packed
    if packed[:12] == bytes(12) or packed[:12] == bytes.fromhex("0064ff9b0000000000000000"):
        yield ipaddress.IPv4Address(packed[12:])  # IPv4-compatible ::a.b.c.d and NAT64 64:ff9b::a.b.c.d


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """``host`` is listed exactly, or under a listed ``*.domain`` wildcard."""
    host = host.lower().rstrip(".")
    for allowed in allowed_hosts:
        allowed = allowed.lower().rstrip(".")
        if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
            return True
    return False


def parse_exemption(entry: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` or ``"[::1]:8080"`` as a normalised (address, port) pair; ValueError otherwise."""
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:([0-9]{1,5})|([0-9.]+):([0-9]{1,5})", entry.strip())
    if not match:
        raise ValueError(f"{entry!r} is not an exact address:port pair (e.g. 127.0.0.1:8080 or [::1]:8080)")
    host, port = (match[1], match[2]) if match[1] else (match[3], match[4])
    if not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r} has no valid port")
    return ipaddress.ip_address(host).compressed, int(port)


def _check_url(url: httpx.URL | str, allowed_hosts: Iterable[str] | None) -> httpx.URL:
    """``url`` parsed, if it may be fetched at all; its addresses are checked when the connection is made."""
    try:
        url = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise EgressRefused("the URL is not valid") from None
    if url.scheme not in ("http", "https"):
        raise EgressRefused("only http and https URLs are fetched")
    if url.userinfo:
        raise EgressRefused("URLs with credentials are not fetched")
    host = url.host
    if not host:
        raise EgressRefused("the URL has no host")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is None and _NUMERIC_HOST.match(host):
        raise EgressRefused("numeric hosts must be canonical IP addresses")
    if literal is not None and literal.version == 4 and not _CANONICAL_IPV4.match(host):
        raise EgressRefused("numeric hosts must be canonical IP addresses")
    if allowed_hosts is not None and not host_allowed(host, allowed_hosts):
        raise EgressRefused("the host is not on the org's allowlist")
    return url


# ------------------------------------------------------------------------------------ the connection


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves once, checks every address, and connects only to an address it checked."""

    def __init__(self, resolver: Resolver, exemptions: frozenset[tuple[str, int]]) -> None:
        self._resolver = resolver
        self._exemptions = exemptions
        self._sockets = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        addresses = await self._checked_addresses(host, port, timeout)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._sockets.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                       socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last_error = error
        assert last_error is not None
        raise last_error

    async def _checked_addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            resolved = [literal]
        else:
            try:
                async with asyncio.timeout(timeout):
                    resolved = [ipaddress.ip_address(a.split("%", 1)[0]) for a in await self._resolver(host, port)]
            except (OSError, TimeoutError, ValueError):
                raise EgressRefused("the host could not be resolved") from None
        if not resolved:
            raise EgressRefused("the host could not be resolved")
        for address in resolved:
            if forbidden_address(address) and (address.compressed, port) not in self._exemptions:
                raise EgressRefused("the host resolves to a non-public address")
        return [address.compressed for address in resolved]

    async def sleep(self, seconds: float) -> None:
        await self._sockets.sleep(seconds)

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise EgressRefused("unix sockets are never used for egress")


# --------------------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class EgressTimeouts:
    connect: float = 10.0
    read: float = 30.0
    total: float = 300.0


class EgressClient:
    """An httpx client that only reaches public addresses (and the exact exemptions), following redirects by hand.

    ``resolver`` replaces DNS (tests inject hostile answers with it); ``exemptions`` are exact (address, port)
    pairs allowed although not public.
    """

    def __init__(self, *, exemptions: Iterable[tuple[str, int]] = (), resolver: Resolver = system_resolver,
                 timeouts: EgressTimeouts = EgressTimeouts(), max_connections: int = 50,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeouts = timeouts
        backend = _CheckedBackend(resolver, frozenset(exemptions))
        # One context for both: loading the CA bundle is the slowest part of building the client.
        ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False)
        # httpx has no public knob for the network backend; the pool it builds is swapped for one that has ours.
        # TLS still names the URL's host: httpcore sends it as SNI and checks the certificate against it.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=max_connections,
            max_keepalive_connections=max_connections // 2, keepalive_expiry=5.0, network_backend=backend,
        )
        self._http = httpx.AsyncClient(
            transport=transport, trust_env=False, follow_redirects=False,
            # One client serves every org: no cookie one platform sets may ride along on a later request.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect),
        )

    async def __aenter__(self) -> EgressClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @asynccontextmanager
    async def stream(self, method: str, url: str, *, content: bytes | None = None,
                     headers: dict[str, str] | None = None, allowed_hosts: Iterable[str] | None = None,
                     max_redirects: int = MAX_REDIRECTS) -> AsyncIterator[httpx.Response]:
        """The final answer to ``method url`` after at most ``max_redirects`` checked hops (GET and HEAD only;
        anything else is never redirected, since a signature binds it to its URL)."""
        allowed = None if allowed_hosts is None else tuple(allowed_hosts)
        if method not in ("GET", "HEAD"):
            max_redirects = 0
        target = _check_url(url, allowed)
        async with asyncio.timeout(self.timeouts.total):
            for _hop in range(max_redirects + 1):
                request = self._http.build_request(method, target, content=content, headers=headers)
                response = await self._http.send(request, stream=True)
                location = response.headers.get("location")
                if response.status_code not in REDIRECT_STATUSES or location is None:
                    try:
                        yield response
                    finally:
                        await response.aclose()
                    return
                await response.aclose()
                if max_redirects == 0:
                    break
                target = _check_url(target.join(location), allowed)
            raise EgressRefused("too many redirects" if max_redirects else "the answer was a redirect")

    async def request(self, method: str, url: str, *, content: bytes | None = None,
                      headers: dict[str, str] | None = None, max_bytes: int = 1 << 20) -> Answer:
        """A whole answer of at most ``max_bytes`` (callbacks, webhooks: never redirected)."""
        async with self.stream(method, url, content=content, headers=headers, max_redirects=0) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise EgressRefused("the answer is larger than allowed")
            return Answer(status_code=response.status_code, headers=response.headers, content=bytes(body))


@dataclass(frozen=True)
class Answer:
    """A complete, size-capped answer; ``content`` is the body as decoded from any content encoding."""

    status_code: int
    headers: httpx.Headers
    content: bytes
