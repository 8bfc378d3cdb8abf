"""One way to reach Temporal, so the API, the worker, the CLI and the tests agree on the converter."""

from __future__ import annotations

from temporalio.client import Client

from tipline.codec import DATA_CONVERTER
from tipline.settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                data_converter=DATA_CONVERTER)


def case_ui_url(settings: Settings, workflow_id: str) -> str:
    return f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"
