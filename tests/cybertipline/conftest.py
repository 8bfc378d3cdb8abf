"""Fixtures: a real sandbox on loopback, a client pointed at it, and hand-written synthetic XML documents."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cybertipline.client import CyberTiplineClient
from cybertipline.sandbox import SandboxClock, SandboxConfig, SandboxState, create_sandbox_app
from tipline.http_server import serve_app

# NCMEC's schema is operator-supplied data and never lives in the repo; the checkout sits beside ../shared.
XSD_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "ncmec" / "cyber_tipline.xsd"

# httpx builds a fresh TLS context per client (~40 ms); loopback tests speak plain HTTP, so share one.
TLS = ssl.create_default_context()

USERNAME = "usr123"
PASSWORD = "pswd123"
INCIDENT_TYPE = "Child Pornography (possession, manufacture, and distribution)"
PAST = "2024-05-01T10:00:00Z"
REPORTING_PERSON = "<firstName>Test</firstName><lastName>Reporter</lastName><email>test.reporter@example.com</email>"
WEB_PAGE = "<internetDetails><webPageIncident><url>https://example.com/post/1</url></webPageIncident></internetDetails>"


def report_xml(
    *,
    incident_date_time: str = PAST,
    summary_extra: str = "",
    internet_details: str = WEB_PAGE,
    reporting_person: str = REPORTING_PERSON,
    reporter_extra: str = "",
    tail: str = "",
) -> bytes:
    """A small synthetic ``<report>``; ``summary_extra`` goes before incidentDateTime, ``tail`` after reporter."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<report xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:noNamespaceSchemaLocation="https://report.cybertip.org/ispws/xsd">'
        f"<incidentSummary><incidentType>{INCIDENT_TYPE}</incidentType>{summary_extra}"
        f"<incidentDateTime>{incident_date_time}</incidentDateTime></incidentSummary>"
        f"{internet_details}"
        f"<reporter><reportingPerson>{reporting_person}</reportingPerson>{reporter_extra}</reporter>"
        f"{tail}</report>"
    ).encode()


def out_of_order_report_xml() -> bytes:
    """``reporter`` before ``incidentSummary``: a sequence violation the XSD catches."""
    return (
        "<report>"
        f"<reporter><reportingPerson>{REPORTING_PERSON}</reportingPerson></reporter>"
        f"<incidentSummary><incidentType>{INCIDENT_TYPE}</incidentType>"
        f"<incidentDateTime>{PAST}</incidentDateTime></incidentSummary>"
        "</report>"
    ).encode()


def future_timestamp(days: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_details_xml(report_id: int, file_id: str, *, body: str = "") -> bytes:
    """``<fileDetails>``; ``body`` holds the optional elements after fileId, in XSD order."""
    return f"<fileDetails><reportId>{report_id}</reportId><fileId>{file_id}</fileId>{body}</fileDetails>".encode()


@dataclass
class RunningSandbox:
    base_url: str
    app: FastAPI
    config: SandboxConfig

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.app.state.sandbox
        return state

    @property
    def ispws(self) -> str:
        return f"{self.base_url}/ispws"

    def client(self, username: str = USERNAME, password: str = PASSWORD, **kwargs: Any) -> CyberTiplineClient:
        kwargs.setdefault("transport", httpx.AsyncHTTPTransport(verify=TLS))
        return CyberTiplineClient(self.ispws, username, password, **kwargs)

    def http(self, *, auth: tuple[str, str] | None = (USERNAME, PASSWORD)) -> httpx.AsyncClient:
        """A raw HTTP client for what the CyberTiplineClient deliberately hides (headers, statuses, forms)."""
        return httpx.AsyncClient(base_url=self.base_url, auth=auth, timeout=10.0, verify=TLS)

    async def control(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        async with self.http() as http:
            response = await http.request(method, f"/_sandbox{path}", json=json)
            response.raise_for_status()
            return response.json()


@asynccontextmanager
async def running_sandbox(config: SandboxConfig, clock: SandboxClock | None = None) -> AsyncIterator[RunningSandbox]:
    app = create_sandbox_app(config, clock)
    async with serve_app(app) as base_url:
        yield RunningSandbox(base_url=base_url, app=app, config=config)


@pytest.fixture
def xsd_path() -> Path:
    assert XSD_PATH.is_file(), f"NCMEC's schema is expected at {XSD_PATH}"
    return XSD_PATH


@pytest.fixture
def sandbox_config(xsd_path: Path) -> SandboxConfig:
    """A fresh default config for tests that start their own sandbox with changes."""
    return SandboxConfig(username=USERNAME, password=PASSWORD, xsd_path=xsd_path)


@pytest.fixture(scope="session")
async def _shared_sandbox() -> AsyncIterator[RunningSandbox]:
    # One server for the whole session: uvicorn's shutdown alone costs 0.1 s, and the state resets cheaply.
    assert XSD_PATH.is_file(), f"NCMEC's schema is expected at {XSD_PATH}"
    config = SandboxConfig(username=USERNAME, password=PASSWORD, xsd_path=XSD_PATH)
    async with running_sandbox(config) as running:
        yield running


@pytest.fixture
async def sandbox(_shared_sandbox: RunningSandbox) -> RunningSandbox:
    """The default sandbox, with no reports, no faults and the real time."""
    state = _shared_sandbox.state
    state.store.reset()
    state.faults.reset()
    state.clock.reset()
    return _shared_sandbox


@pytest.fixture
async def client(sandbox: RunningSandbox) -> AsyncIterator[CyberTiplineClient]:
    async with sandbox.client() as cybertip:
        yield cybertip
