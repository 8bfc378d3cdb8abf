"""A TLS front for the plaintext Temporal dev server (``temporal server start-dev`` has no TLS flags): the
client speaks real TLS, or mTLS, to it, as to a cluster's frontend. Certificates are made up per test.

The front sees the decrypted HTTP/2 stream, so it can also record the request headers each gRPC call carried
(``authorization``, for an API key), as a cluster's frontend receives them: it decodes the client's HEADERS
frames with an HPACK decoder of its own and passes every byte on unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import hpack
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def make_ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, path


def _leaf(directory: Path, name: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
          usage: x509.ObjectIdentifier, san: list[x509.GeneralName] | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def make_pki(directory: Path) -> Pki:
    ca, ca_key, ca_path = make_ca(directory, "test-ca")
    server_cert, server_key = _leaf(directory, "temporal-frontend", ca, ca_key, ExtendedKeyUsageOID.SERVER_AUTH,
                                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client_cert, client_key = _leaf(directory, "tipline-worker", ca, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(ca=ca_path, server_cert=server_cert, server_key=server_key, client_cert=client_cert,
               client_key=client_key)


# hpack logs every header it decodes at DEBUG, values included: the front's reading must not put the very
# credential a test checks for into the logs the test reads.
logging.getLogger("hpack").setLevel(logging.WARNING)

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _CONTINUATION = 0x1, 0x9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20


class RequestHeaders:
    """The header block of each request a client sent on one HTTP/2 connection (RFC 9113 frames, RFC 7541
    HPACK). Fed the client's bytes in order; a stream it cannot parse is reported, never guessed at."""

    def __init__(self, sink: list[dict[str, str]]) -> None:
        self._sink = sink
        self._buffer = bytearray()
        self._preface_seen = False
        self._block = bytearray()
        self._decoder = hpack.Decoder()
        self.error: Exception | None = None

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            self._feed(data)
        except Exception as error:  # a test's proxy: keep passing bytes on, and say why recording stopped
            self.error = error

    def _feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._preface_seen:
            if len(self._buffer) < len(_PREFACE):
                return
            if not self._buffer.startswith(_PREFACE):
                raise ValueError("not an HTTP/2 connection preface")
            del self._buffer[:len(_PREFACE)]
            self._preface_seen = True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            kind, flags = self._buffer[3], self._buffer[4]
            if len(self._buffer) < 9 + length:
                return
            payload = bytes(self._buffer[9:9 + length])
            del self._buffer[:9 + length]
            if kind == _HEADERS:
                if flags & _PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                if flags & _PRIORITY:
                    payload = payload[5:]
                self._block = bytearray(payload)
            elif kind == _CONTINUATION:
                self._block += payload
            else:
                continue
            if flags & _END_HEADERS:
                self._sink.append(dict(self._decoder.decode(bytes(self._block), raw=False)))
                self._block.clear()


@contextlib.asynccontextmanager
async def tls_front(upstream: str, pki: Pki, *, require_client_cert: bool,
                    requests: list[dict[str, str]] | None = None) -> AsyncIterator[str]:
    """Serve TLS (HTTP/2 by ALPN, as gRPC needs) on a loopback port and pass the bytes to ``upstream``.

    With ``requests``, the headers of every request clients send are appended to it, one dict per request."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.set_alpn_protocols(["h2"])
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    host, port = upstream.rsplit(":", 1)

    readers: list[RequestHeaders] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   headers: RequestHeaders | None = None) -> None:
        try:
            while data := await reader.read(65536):
                if headers is not None:
                    headers.feed(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        headers = RequestHeaders(requests) if requests is not None else None
        if headers is not None:
            readers.append(headers)
        await asyncio.gather(pipe(client_reader, server_writer, headers), pipe(server_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    address = server.sockets[0].getsockname()
    try:
        yield f"127.0.0.1:{address[1]}"
    finally:
        server.close()
    failed = [reader.error for reader in readers if reader.error is not None]
    if failed:
        raise AssertionError(f"the TLS front could not read a client's HTTP/2 headers: {failed[0]!r}")
