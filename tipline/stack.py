"""``tipline up``: the whole stack on embedded defaults, on loopback, with its data in one folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path

from fastapi import FastAPI
from temporalio.client import Client

from api.app import create_app
from cybertipline.sandbox import create_sandbox_app
from tipline.db import make_engine, upgrade
from tipline.http_server import serve_app
from tipline.logging import get_logger
from tipline.payload_keys import key_source
from tipline.private_files import PRIVATE_UMASK
from tipline.sandbox_cli import sandbox_config
from tipline.settings import NcmecCredentials, NcmecEnvironment, OrgSettings, ReporterSettings, Settings, orgs_toml
from tipline.shutdown import cancel_on_sigterm
from tipline.temporal import connect, temporal_binary
from worker import case_worker, start_retention_clock
from workflows import search_attributes as sa

log = get_logger(__name__)
DEMO_ORG = "demo"


def make_data_dir_private(data_dir: Path) -> None:
    """The data folder holds the database, Temporal's history and the evidence: its owner's alone (0700).

    Files an earlier version left readable to others are closed too.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in [data_dir, *data_dir.rglob("*")]:
        if not path.is_symlink() and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            path.chmod(0o700 if path.is_dir() else 0o600)


def ensure_local_config(settings: Settings) -> bool:
    """Write a demo org for the sandbox on first start. True if it was written now."""
    make_data_dir_private(settings.data_dir)
    orgs_file = settings.resolved_orgs_file
    if orgs_file.exists():
        return False
    demo = OrgSettings(
        id=DEMO_ORG, name="Demo Platform", platform_name="Demo Photos",
        ncmec=NcmecCredentials(environment=NcmecEnvironment.SANDBOX, username="demo-esp",
                               password=secrets.token_urlsafe(18)),
        reporter=ReporterSettings(first_name="Demo", last_name="Reporter", email="trust-safety@demo.example.com"),
        company_template="Demo Platform, 1 Example Street, Example City", legal_url="https://demo.example.com/legal",
    )
    orgs_file.write_text("# Orgs this Tipline serves. Credentials live here only; keep this file private.\n\n"
                         + orgs_toml([demo]))
    orgs_file.chmod(0o600)
    return True


def sandbox_app(settings: Settings) -> FastAPI:
    """The CyberTipline sandbox, open to every org configured for it, keeping its state in the data folder."""
    return create_sandbox_app(sandbox_config(settings))


def codec_endpoint(settings: Settings) -> str:
    return f"http://{settings.api_host}:{settings.api_port}/codec"


def start_temporal(settings: Settings) -> subprocess.Popen[bytes]:
    host, port = settings.temporal_address.rsplit(":", 1)
    ui_port = settings.temporal_ui_url.rsplit(":", 1)[1]
    log_file = os.fdopen(os.open(settings.data_dir / "temporal.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
                         "ab")
    return subprocess.Popen(
        [temporal_binary(), "server", "start-dev", "--ip", host, "--port", port, "--ui-port", ui_port,
         "--db-filename", str(settings.data_dir / "temporal.db"), "--log-level", "warn",
         # Payloads are encrypted: the UI asks the API's codec server to decode them for an operator.
         "--ui-codec-endpoint", codec_endpoint(settings), *sa.dev_server_flags()],
        # Its SQLite files (temporal.db and journals) are created under this umask: private like ours.
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, umask=PRIVATE_UMASK,
    )


async def wait_for_temporal(settings: Settings, process: subprocess.Popen[bytes], timeout: float = 30.0) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the Temporal dev server exited; see {settings.data_dir / 'temporal.log'}")
        try:
            return await connect(settings)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise SystemExit("the Temporal dev server did not answer in time") from None
            await asyncio.sleep(0.2)


async def run_stack(settings: Settings) -> None:
    cancel_on_sigterm()
    os.umask(PRIVATE_UMASK)  # everything the stack writes from here on: the owner's only
    first_start = ensure_local_config(settings)
    key_source(settings)  # the payload key, generated now (0600) if this is the first start
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    temporal_process = start_temporal(settings)
    try:
        client = await wait_for_temporal(settings, temporal_process)
        sandbox = sandbox_app(settings)
        # The local stack serves plain http on loopback, where a Secure session cookie would not come back;
        # a deployment behind https keeps the default.
        api_settings = settings if "session_cookie_secure" in settings.model_fields_set else settings.model_copy(
            update={"session_cookie_secure": False})
        api_app = create_app(api_settings, temporal=client, engine=engine)
        async with (
            serve_app(sandbox, settings.sandbox_host, settings.sandbox_port),
            serve_app(api_app, settings.api_host, settings.api_port) as api_url,
            case_worker(client, settings, engine),
        ):
            await start_retention_clock(client, settings)
            print_banner(settings, api_url, first_start)
            await asyncio.Event().wait()
    finally:
        temporal_process.terminate()
        try:
            temporal_process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            temporal_process.kill()
        engine.dispose()


def print_banner(settings: Settings, api_url: str, first_start: bool) -> None:
    tipline = Path(sys.executable).parent / "tipline"
    lines = [
        f"Tipline is running. Data: {settings.data_dir.resolve()}" + (" (created now)" if first_start else ""),
        f"  Temporal         {settings.temporal_address} (gRPC)",
        f"  Temporal Web UI  {settings.temporal_ui_url}",
        f"  API              {api_url}  (OpenAPI docs {api_url}/docs, review page {api_url}/review)",
        f"  NCMEC sandbox    {settings.resolved_sandbox_url}",
        *("  " + line for line in sandbox_config(settings).describe()),
        f"  Codec server     {codec_endpoint(settings)} (the Web UI decodes payloads through it; Admin keys only)",
        f"  Worker           task queue {settings.task_queue}",
        f"  Database         {settings.resolved_database_url}",
        "",
        f"An API key:  {os.path.relpath(tipline)} apikey create --org {DEMO_ORG} --role child_safety_moderator",
        f"A demo:      {os.path.relpath(tipline)} demo   (in another terminal)",
        f"Decoded cases in the Web UI: an admin key, posted once at {api_url}/codec/login, then tick "
        "\"Include cross-origin credentials\" in the UI's codec settings (README, Temporal Web UI).",
        "Ctrl-C (or SIGTERM) stops every part.",
    ]
    if settings.ncmec_xsd_path is None:
        lines.insert(-1, "Reports are not checked against NCMEC's XSD: set TIPLINE_NCMEC_XSD_PATH to validate them.")
    print("\n".join(lines), flush=True)


def main(settings: Settings) -> None:
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run_stack(settings))
    print("Tipline stopped.", flush=True)
