"""Reaching a real Temporal cluster: TLS and mTLS with the configured CA and client certificate, the API key
arriving at the frontend as a bearer token (and nowhere else), and ``tipline temporal setup`` registering the
search attributes on a server that has none."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from pydantic import ValidationError
from structlog.testing import capture_logs
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.tls_proxy import Pki, make_ca, make_pki, tls_front
from tipline.codec import throwaway_converter
from tipline.settings import Settings
from tipline.temporal import TemporalUnreachable, connect, temporal_binary, tls_config
from tipline.temporal_setup import wanted
from workflows import search_attributes as sa


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def tls_settings(address: str, pki: Pki, **overrides: object) -> Settings:
    values: dict[str, object] = {"temporal_address": address, "temporal_tls_ca_file": pki.ca,
                                 "temporal_tls_cert_file": pki.client_cert, "temporal_tls_key_file": pki.client_key}
    return Settings(**{**values, **overrides})


def test_the_tls_settings_build_the_clients_tls_config(pki: Pki) -> None:
    config = tls_config(tls_settings("temporal.example:7233", pki, temporal_tls_server_name="frontend.example"))
    assert config is not None
    assert config.server_root_ca_cert == pki.ca.read_bytes()
    assert config.client_cert == pki.client_cert.read_bytes()
    assert config.client_private_key == pki.client_key.read_bytes()
    assert config.domain == "frontend.example"
    assert tls_config(Settings()) is None  # the local dev server: plaintext
    # An API key alone (Temporal Cloud) means TLS with the system's trust store.
    cloud = tls_config(Settings(temporal_api_key="made-up-key"))
    assert cloud is not None and cloud.server_root_ca_cert is None


def test_a_client_certificate_without_its_key_is_refused_naming_both_settings(pki: Pki) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(temporal_tls_cert_file=pki.client_cert)
    assert "temporal_tls_cert_file and temporal_tls_key_file" in str(refused.value)
    with pytest.raises(ValidationError) as missing:
        Settings(temporal_tls_ca_file=pki.ca.parent / "absent.pem")
    assert "temporal_tls_ca_file" in str(missing.value)


async def test_the_worker_connects_over_mtls_with_the_configured_ca_and_client_certificate(
        temporal_client: Client, pki: Pki) -> None:
    upstream = temporal_client.service_client.config.target_host
    async with tls_front(upstream, pki, require_client_cert=True) as address:
        client = await connect(tls_settings(address, pki))
        assert await client.service_client.check_health()
        # A real round trip through TLS: the namespace the settings name answers.
        described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        assert described.namespace_info.name == "default"


async def test_a_server_certificate_from_another_ca_fails_with_an_error_naming_the_tls_settings(
        temporal_client: Client, pki: Pki, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _, _, wrong_ca = make_ca(other, "some-other-ca")
    upstream = temporal_client.service_client.config.target_host
    async with tls_front(upstream, pki, require_client_cert=False) as address:
        with pytest.raises(TemporalUnreachable) as refused:
            await connect(tls_settings(address, pki, temporal_tls_ca_file=wrong_ca))
    message = str(refused.value)
    assert address in message and str(wrong_ca) in message and "TLS" in message
    assert "certificate" in message.lower()


async def test_mtls_without_a_client_certificate_is_refused(temporal_client: Client, pki: Pki) -> None:
    upstream = temporal_client.service_client.config.target_host
    async with tls_front(upstream, pki, require_client_cert=True) as address:
        settings = Settings(temporal_address=address, temporal_tls_ca_file=pki.ca)
        with pytest.raises(TemporalUnreachable):
            client = await connect(settings)
            await client.service_client.check_health()


def grpc_calls(requests: list[dict[str, str]]) -> list[dict[str, str]]:
    return [headers for headers in requests if headers.get("content-type", "").startswith("application/grpc")]


async def test_the_api_key_setting_reaches_the_server_as_a_bearer_token_and_nothing_else_shows_it(
        temporal_client: Client, pki: Pki, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """TIPLINE_TEMPORAL_API_KEY, as Temporal Cloud's API keys are used: every gRPC call the client makes carries
    ``authorization: Bearer <key>``, which the TLS front decodes from the HTTP/2 stream the server receives."""
    key = f"tpl-temporal-api-key-{uuid.uuid4().hex}"
    monkeypatch.setenv("TIPLINE_TEMPORAL_API_KEY", key)
    upstream = temporal_client.service_client.config.target_host
    requests: list[dict[str, str]] = []
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        async with tls_front(upstream, pki, require_client_cert=False, requests=requests) as address:
            settings = Settings(temporal_address=address, temporal_tls_ca_file=pki.ca)
            assert settings.temporal_api_key is not None and settings.temporal_api_key.get_secret_value() == key
            client = await connect(settings)
            described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
            assert described.namespace_info.name == "default"
            # The operator service too: `tipline temporal setup` uses it on a real cluster.
            assert await custom_attributes(client)
        # A server that is not there: the error names the settings in play, not the key.
        with pytest.raises(TemporalUnreachable) as unreachable:
            await connect(settings.model_copy(update={"temporal_address": address}))
    calls = grpc_calls(requests)
    paths = {headers[":path"] for headers in calls}
    assert {"/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace",
            "/temporal.api.operatorservice.v1.OperatorService/ListSearchAttributes"} <= paths, paths
    assert all(headers.get("authorization") == f"Bearer {key}" for headers in calls), [
        (headers[":path"], "authorization" in headers) for headers in calls]

    assert "API key set" in str(unreachable.value)
    shown = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump()),
             str(unreachable.value), repr(unreachable.value), caplog.text, *(str(entry) for entry in logs)]
    assert not [text for text in shown if key in text]


async def test_tipline_temporal_setup_sends_the_api_key_from_the_environment(
        temporal_client: Client, pki: Pki) -> None:
    """The command an operator runs once per namespace, configured only by the environment."""
    key = f"tpl-temporal-api-key-{uuid.uuid4().hex}"
    requests: list[dict[str, str]] = []
    async with tls_front(temporal_client.service_client.config.target_host, pki, require_client_cert=False,
                         requests=requests) as address:
        code, output = await run_setup(address, TIPLINE_TEMPORAL_API_KEY=key, TIPLINE_TEMPORAL_TLS_CA_FILE=str(pki.ca))
    assert code == 0, output
    assert f"{len(sa.ALL)} already present" in output  # the suite's dev server has them from its flags
    assert key not in output
    calls = grpc_calls(requests)
    assert "/temporal.api.operatorservice.v1.OperatorService/ListSearchAttributes" in {h[":path"] for h in calls}
    assert calls
    assert all(headers.get("authorization") == f"Bearer {key}" for headers in calls), [
        (headers[":path"], "authorization" in headers) for headers in calls]


@pytest.fixture
async def bare_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server started without any ``--search-attribute``, like a fresh cluster."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary(),
                                                data_converter=throwaway_converter(), dev_server_log_level="error")
    yield env
    await env.shutdown()


async def run_setup(address: str, namespace: str = "default", **tipline_env: str) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIPLINE_")}
    env.update(TIPLINE_TEMPORAL_ADDRESS=address, TIPLINE_TEMPORAL_NAMESPACE=namespace, **tipline_env)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "tipline"), "temporal", "setup", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


async def custom_attributes(client: Client, namespace: str = "default") -> dict[str, int]:
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    return dict(listed.custom_attributes)


async def test_setup_registers_every_search_attribute_once_and_is_idempotent(
        bare_server: WorkflowEnvironment) -> None:
    client = bare_server.client
    address = client.service_client.config.target_host
    assert not set(wanted()) & set(await custom_attributes(client))

    code, output = await run_setup(address)
    assert code == 0, output
    assert f"{len(sa.ALL)} search attributes added, 0 already present" in output
    registered = await custom_attributes(client)
    assert {name: registered.get(name) for name in wanted()} == wanted()

    code, output = await run_setup(address)
    assert code == 0, output
    assert f"0 search attributes added, {len(sa.ALL)} already present" in output
    assert await custom_attributes(client) == registered


async def test_setup_refuses_an_attribute_registered_with_another_type_in_the_configured_namespace(
        bare_server: WorkflowEnvironment) -> None:
    client = bare_server.client
    await client.workflow_service.register_namespace(RegisterNamespaceRequest(
        namespace="platform-a", workflow_execution_retention_period=Duration(seconds=86400)))
    await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace="platform-a", search_attributes={sa.ORG.name: IndexedValueType.INDEXED_VALUE_TYPE_TEXT}))

    code, output = await run_setup(client.service_client.config.target_host, namespace="platform-a")
    assert code != 0
    assert "TiplineOrg exists in namespace platform-a as INDEXED_VALUE_TYPE_TEXT" in output
    assert "Traceback" not in output
    assert set(await custom_attributes(client, "platform-a")) == {sa.ORG.name}  # nothing else was touched
    assert not set(wanted()) & set(await custom_attributes(client))  # nor the default namespace
