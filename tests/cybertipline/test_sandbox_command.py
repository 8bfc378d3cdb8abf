"""`tipline sandbox`: flags and settings for schema validation, the reporter-email rule and the HTTP status of
application errors, each printed at start and each obeyed by the running server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from lxml import etree
from pydantic import ValidationError

from tests.cybertipline.conftest import XSD_PATH, out_of_order_report_xml, report_xml
from tests.hostile_xml import internal_entity
from tipline.cli import build_parser
from tipline.sandbox_cli import DEFAULT_XSD_NAME, _overrides, sandbox_config, sandbox_xsd
from tipline.settings import Settings
from tipline.stack import ensure_local_config

STARTUP_DEADLINE = 30.0
XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
NO_EMAIL = "<firstName>Test</firstName><lastName>Reporter</lastName>"


def _settings(tmp_path: Path, *argv: str) -> Settings:
    args = build_parser().parse_args(["--data-dir", str(tmp_path / "data"), "sandbox", *argv])
    settings = Settings(**_overrides(args))
    ensure_local_config(settings)
    return settings


def test_schema_validation_is_on_whenever_an_xsd_is_found(tmp_path: Path) -> None:
    assert sandbox_xsd(_settings(tmp_path)) is None  # auto, nothing found: off, and said so at start
    assert "OFF" in sandbox_config(_settings(tmp_path)).describe()[0]
    fetched = tmp_path / "data" / DEFAULT_XSD_NAME
    fetched.write_bytes(XSD_PATH.read_bytes())  # where `tipline ncmec fetch-xsd` puts it
    assert sandbox_xsd(_settings(tmp_path)) == fetched
    assert sandbox_xsd(_settings(tmp_path, "--schema-validation", "off")) is None
    assert sandbox_xsd(_settings(tmp_path, "--xsd", str(XSD_PATH))) == XSD_PATH


def test_a_schema_asked_for_but_missing_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no XSD"):
        sandbox_xsd(_settings(tmp_path, "--schema-validation", "on"))
    with pytest.raises(SystemExit, match="no XSD"):
        sandbox_xsd(_settings(tmp_path, "--xsd", str(tmp_path / "missing.xsd")))


def test_settings_come_from_the_environment_and_flags_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIPLINE_SANDBOX_REPORTER_EMAIL_REQUIRED", "false")
    monkeypatch.setenv("TIPLINE_SANDBOX_ERROR_HTTP_STATUS", "400")
    config = sandbox_config(_settings(tmp_path))
    assert (config.strict_reporting_person_email, config.error_http_status) == (False, 400)
    config = sandbox_config(_settings(tmp_path, "--reporter-email-required", "--error-http-status", "422"))
    assert (config.strict_reporting_person_email, config.error_http_status) == (True, 422)


def test_a_redirect_status_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIPLINE_SANDBOX_ERROR_HTTP_STATUS", "302")
    with pytest.raises(ValidationError, match="sandbox_error_http_status"):
        Settings()


@pytest.mark.parametrize("status", ["302", "100", "abc"])
def test_an_error_status_that_is_not_an_error_is_refused(status: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "--error-http-status", status])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tipline_sandbox_prints_and_obeys_its_strictness(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    org = next(iter(settings.orgs.orgs.values()))
    auth = (org.ncmec.username, org.ncmec.password.get_secret_value())
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIPLINE_")}
    env.update(TIPLINE_DATA_DIR=str(settings.data_dir), TIPLINE_SANDBOX_PORT=str(port))
    log = tmp_path / "sandbox.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "tipline"), "sandbox", "--xsd", str(XSD_PATH),
             "--no-reporter-email-required", "--error-http-status", "422"],
            cwd=tmp_path, env=env, stdout=out, stderr=out,
        )
    try:
        base = f"http://127.0.0.1:{port}/ispws"
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{base}/status", auth=auth).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        banner = log.read_text()
        assert f"schema validation    on, against {XSD_PATH}" in banner
        assert "reporter email rule  off" in banner
        assert "application errors   HTTP 422" in banner

        def submit(document: bytes) -> tuple[int, str | None]:
            response = httpx.post(f"{base}/submit", content=document, headers=XML_HEADERS, auth=auth)
            assert response.headers["Request-ID"]
            return response.status_code, etree.fromstring(response.content).findtext("responseCode")

        assert submit(report_xml(reporting_person=NO_EMAIL)) == (200, "0")  # the email rule is off
        assert submit(out_of_order_report_xml()) == (422, "4100")  # the schema is on, errors are 422
        assert submit(internal_entity("report")) == (422, "4110")
    finally:
        process.terminate()
        process.wait(timeout=10)
