"""SSRF: no URL a platform sends can turn Tipline's egress inward.

Every refusal is proven to happen before any connection: the ``connections`` fixture records each socket the
client opens and fails the test on an attempt to reach anything but loopback, and hostile DNS answers come from
an injected resolver, never from real DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from tests.helpers import loopback_server
from tipline.egress import (
    EgressClient,
    EgressRefused,
    EgressTimeouts,
    forbidden_address,
    host_allowed,
    parse_exemption,
)
from tipline.http_server import serve_app
from tipline.settings import NcmecCredentials, OrgDirectory, OrgSettings, ReporterSettings, Settings, orgs_toml

FORBIDDEN = [
    "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.1.2.3",
    "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.0.0.8", "192.0.2.1", "192.168.1.1", "198.18.0.1",
    "198.51.100.7", "203.0.113.9", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "2001:db8::1", "100::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "::127.0.0.1", "::10.0.0.1",  # IPv4-compatible
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1",  # NAT64
    "2002:7f00:1::1", "2002:a00:1::", "2002:5db8:d822::1",  # 6to4, private and public inside
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_every_inward_range_is_forbidden(address: str) -> None:
    assert forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_not(address: str) -> None:
    assert not forbidden_address(ipaddress.ip_address(address))


def test_exemptions_are_exact_address_port_pairs() -> None:
    assert parse_exemption("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_exemption("[0:0::1]:9") == ("::1", 9)
    for bad in ("localhost:8080", "127.0.0.1", "127.0.0.1:*", "10.0.0.0/8:80", "127.0.0.1:0", "[::1]"):
        with pytest.raises(ValueError):
            parse_exemption(bad)


def test_allowlist_matches_exact_hosts_and_wildcard_subdomains() -> None:
    allowed = ["media.example.com", "*.cdn.example.net"]
    assert host_allowed("MEDIA.example.com.", allowed)
    assert host_allowed("a.b.cdn.example.net", allowed)
    assert not host_allowed("cdn.example.net.evil.test", allowed)
    assert not host_allowed("evil-media.example.com", allowed)
    assert not host_allowed("xcdn.example.net", allowed)


# ------------------------------------------------------------------------------ against real sockets


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Every TCP connection the egress client opens; an attempt at a non-loopback address fails the test."""
    opened: list[tuple[str, int]] = []
    connect = httpcore.AnyIOBackend.connect_tcp

    async def recorded(self: httpcore.AnyIOBackend, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"the egress client tried to connect to {host}")
        opened.append((host, port))
        return await connect(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", recorded)
    yield opened


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[str]:
    """The one server the client is allowed to reach (an exempt loopback address:port)."""
    app = FastAPI()

    @app.get("/media")
    def media() -> Response:
        return Response(b"\x89PNG\r\n\x1a\n" + bytes(1000), media_type="text/html")

    @app.get("/big")
    def big() -> Response:
        return Response(bytes(5000))

    @app.get("/cookie")
    def cookie(request: Request) -> Response:
        return Response(request.headers.get("cookie", "").encode(), headers={"Set-Cookie": "session=org-a; Path=/"})

    @app.get("/slow")
    async def slow() -> Response:
        await asyncio.sleep(1)
        return Response(b"late")

    @app.api_route("/redirect", methods=["GET", "POST"])
    def redirect(to: str, status: int = 302) -> Response:
        return Response(status_code=status, headers={"Location": to})

    async with serve_app(app) as url:
        yield url


@pytest.fixture(scope="module")
async def inside() -> AsyncIterator[tuple[str, list[str]]]:
    async with loopback_server("the Temporal UI's API") as served:
        yield served


def client_for(platform: str, resolver: Any = None, **kwargs: Any) -> EgressClient:
    exempt = parse_exemption(platform.removeprefix("http://"))
    extra = {"resolver": resolver} if resolver else {}
    return EgressClient(exemptions=[exempt], **extra, **kwargs)


async def fetch(client: EgressClient, url: str, **kwargs: Any) -> bytes:
    async with client.stream("GET", url, **kwargs) as response:
        return await response.aread()


async def refusal(client: EgressClient, url: str, **kwargs: Any) -> str:
    with pytest.raises(EgressRefused) as caught:
        await fetch(client, url, **kwargs)
    return caught.value.reason


async def test_the_exempt_platform_is_reached(platform: str, connections: list) -> None:
    async with client_for(platform) as client:
        assert (await fetch(client, f"{platform}/media")).startswith(b"\x89PNG")
        assert (await fetch(client, f"{platform}/redirect?to=/media")).startswith(b"\x89PNG")
    assert len(connections) >= 1


async def test_another_loopback_port_is_refused_before_connecting(
    platform: str, inside: tuple[str, list[str]], connections: list
) -> None:
    url, hits = inside
    port = url.rsplit(":", 1)[1]
    async with client_for(platform) as client:
        for target in (f"{url}/api/v1/namespaces/default/workflows", f"http://localhost:{port}/",
                       f"http://[::1]:{port}/", f"http://[::ffff:127.0.0.1]:{port}/", f"http://127.0.0.2:{port}/",
                       f"http://0.0.0.0:{port}/"):
            reason = await refusal(client, target)
            assert reason in ("the host resolves to a non-public address", "the host could not be resolved")
            assert port not in reason and "127" not in reason  # nothing that maps the inside network
    assert hits == [] and connections == []


@pytest.mark.parametrize("spelling", ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "017700000001",
                                      "127.0.0.1.", "0300.0250.0.1", "3232235777", "1.2.3.4.5"])
async def test_decimal_octal_and_hex_spellings_are_refused(platform: str, spelling: str, connections: list) -> None:
    async with client_for(platform) as client:
        reason = await refusal(client, f"http://{spelling}:80/x")
    assert reason in ("numeric hosts must be canonical IP addresses", "the URL is not valid")
    assert connections == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/",
                                 "dict://127.0.0.1:11211/", "http://user:pw@example.com/", "http:///nohost",
                                 "javascript:alert(1)"])
async def test_only_plain_http_and_https_urls(platform: str, url: str, connections: list) -> None:
    async with client_for(platform) as client:
        await refusal(client, url)
    assert connections == []


@pytest.mark.parametrize("answers", [["10.0.0.7"], ["169.254.169.254"], ["::1"], ["fd00::5"], ["100.64.1.1"],
                                     ["::ffff:192.168.0.1"], ["64:ff9b::a00:7"], ["93.184.215.14", "10.0.0.7"]])
async def test_names_resolving_inward_are_refused_before_connecting(
    platform: str, answers: list[str], connections: list
) -> None:
    asked: list[tuple[str, int]] = []

    async def hostile(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return answers

    async with client_for(platform, resolver=hostile) as client:
        assert await refusal(client, "https://media.platform.example/a.png") == \
            "the host resolves to a non-public address"
    assert asked == [("media.platform.example", 443)]  # resolved once, then refused: no socket opened
    assert connections == []


async def test_a_name_resolving_to_the_exempt_address_is_reached_at_that_address(
    platform: str, connections: list
) -> None:
    async def to_platform(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    port = int(platform.rsplit(":", 1)[1])
    async with client_for(platform, resolver=to_platform) as client:
        assert (await fetch(client, f"http://media.platform.example:{port}/media")).startswith(b"\x89PNG")
    assert connections == [("127.0.0.1", port)]  # pinned to the address that was checked


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_inward_are_refused(platform: str, inside: tuple[str, list[str]], status: int,
                                            connections: list) -> None:
    url, hits = inside
    async with client_for(platform) as client:
        for target in (f"{url}/api/v1/namespaces", "http://169.254.169.254/latest/meta-data/", "http://2130706433/",
                       "file:///etc/passwd"):
            await refusal(client, f"{platform}/redirect?status={status}&to={target}")
    assert hits == []
    assert {port for _, port in connections} == {int(platform.rsplit(":", 1)[1])}


async def test_redirect_chains_are_cut_short(platform: str, connections: list) -> None:
    hop = "/media"
    for _ in range(4):
        hop = f"/redirect?to={hop.replace('&', '%26').replace('?', '%3F').replace('=', '%3D')}"
    async with client_for(platform) as client:
        assert await refusal(client, f"{platform}{hop}") == "too many redirects"


async def test_the_allowlist_limits_hosts_on_every_hop(platform: str, connections: list) -> None:
    async with client_for(platform) as client:
        host = platform.removeprefix("http://").rsplit(":", 1)[0]
        assert (await fetch(client, f"{platform}/media", allowed_hosts=[host])).startswith(b"\x89PNG")
        assert await refusal(client, f"{platform}/media", allowed_hosts=["media.example.com"]) == \
            "the host is not on the org's allowlist"
        port = platform.rsplit(":", 1)[1]
        assert await refusal(client, f"{platform}/redirect?to=http://localhost:{port}/media",
                             allowed_hosts=[host]) == "the host is not on the org's allowlist"


async def test_posts_are_never_redirected(platform: str, connections: list) -> None:
    async with client_for(platform) as client:
        with pytest.raises(EgressRefused, match="the answer was a redirect"):
            await client.request("POST", f"{platform}/redirect?to=/media", content=b"{}")


async def test_no_cookie_is_kept_between_requests(platform: str, connections: list) -> None:
    async with client_for(platform) as client:
        assert await fetch(client, f"{platform}/cookie") == b""
        assert await fetch(client, f"{platform}/cookie") == b""


async def test_answers_are_size_capped(platform: str, connections: list) -> None:
    async with client_for(platform) as client:
        assert len((await client.request("GET", f"{platform}/big", max_bytes=5000)).content) == 5000
        with pytest.raises(EgressRefused, match="larger than allowed"):
            await client.request("GET", f"{platform}/big", max_bytes=4999)


async def test_a_slow_answer_hits_the_total_timeout(platform: str, connections: list) -> None:
    async with client_for(platform, timeouts=EgressTimeouts(connect=1, read=10, total=0.3)) as client:
        with pytest.raises(TimeoutError):
            await fetch(client, f"{platform}/slow")


# ------------------------------------------------------------------------ TLS on the pinned address


def self_signed(directory: Path, hostname: str) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return directory / "cert.pem", directory / "key.pem", cert_pem.decode()


@pytest.fixture
async def tls_platform(tmp_path: Path) -> AsyncIterator[tuple[int, str, list[tuple[str | None, str]]]]:
    """An HTTPS server on loopback with a certificate for media.platform.test only; records SNI and Host."""
    cert, key, cert_pem = self_signed(tmp_path, "media.platform.test")
    seen: list[tuple[str | None, str]] = []
    server_names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)  # type: ignore[assignment,misc]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        host = next(line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("host:"))
        seen.append((server_names[-1] if server_names else None, host))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, cert_pem, seen
        server.close()


async def test_tls_keeps_the_hostname_for_sni_host_and_certificate(
    tls_platform: tuple[int, str, list], connections: list
) -> None:
    port, cert_pem, seen = tls_platform

    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    trust = ssl.create_default_context(cadata=cert_pem)
    async with EgressClient(exemptions=[("127.0.0.1", port)], resolver=to_loopback, ssl_context=trust) as client:
        assert await fetch(client, f"https://media.platform.test:{port}/a.png") == b"ok"
        assert seen == [("media.platform.test", f"media.platform.test:{port}")]
        assert connections == [("127.0.0.1", port)]  # the checked address, reached under the hostname
        # The certificate is checked against the hostname: the same server under its address does not pass.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|IP address mismatch"):
            await fetch(client, f"https://127.0.0.1:{port}/a.png")


def test_exemptions_are_validated_in_settings() -> None:
    with pytest.raises(ValidationError, match="egress_private_exemptions"):
        Settings(egress_private_exemptions=["localhost:8080"])
    assert Settings(egress_private_exemptions=["127.0.0.1:8080"]).egress_private_exemptions == ["127.0.0.1:8080"]


def test_the_allowlist_survives_the_orgs_file(tmp_path: Path) -> None:
    org = OrgSettings(id="acme", name="Acme", ncmec=NcmecCredentials(username="u", password="p"),
                      reporter=ReporterSettings(email="safety@acme.example.com"),
                      media_allowed_hosts=("media.example.com", "*.cdn.example.net"))
    (tmp_path / "orgs.toml").write_text(orgs_toml([org]))
    assert OrgDirectory.from_file(tmp_path / "orgs.toml").get("acme").media_allowed_hosts == org.media_allowed_hosts
