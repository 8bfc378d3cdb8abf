"""Chaos benchmark for CyberTip filing. A script, not a test:

    .venv/bin/python benchmarks/chaos_filing.py [--cases 100] [--seed N] [--error-rate 0.2] [--drop-rate 0.1]
        [--kill-every 5] [--postgres-restart-every 45] [--temporal-restart-every 60]
        [--callback-outage-every 30] [--callback-outage 8] [--review-seconds 3] [--late-decisions 0.5]
        [--kills 5] [--deadline 600] [--concurrency 20] [--worker-log PATH] [--save-histories DIR]

It brings up, on loopback and all its own (see ``chaos_infra.py``): a PostgreSQL cluster (initdb into a
temporary folder, as the ``postgres`` user when run as root), a Temporal dev server persisting to a SQLite file,
the CyberTipline sandbox (validating against ``<repo>/../shared/ncmec/cyber_tipline.xsd`` when present), the
org's enrichment and media-list callbacks, and the API in-process; the worker runs as a subprocess
(``python -m worker``) with short timeouts (NCMEC call 3 s, upload heartbeat 2 s, enrichment retried every
1 s), from a copy of the source tree taken at start, so every restart runs the same code. The worker and the
in-process API share the data folder (so the same id key) and the worker may reach exactly two private
addresses (``TIPLINE_EGRESS_PRIVATE_EXEMPTIONS``): the platform's callbacks and the dead webhook. The org's
``callback_secret`` is a Standard Webhooks ``whsec_`` secret, and the callbacks sign their answers with it.

It plays a platform and a reviewer: ``--cases`` made-up users each send 1-3 synthetic images through
``POST /v1/content/upload`` (some items twice, before and right after the decision); once a case shows all its
media the reviewer reports every item with an ``Idempotency-Key`` and the ``case_number`` the case showed,
retrying on errors. Faults, from the first
upload until every case settles:

* the sandbox answers ``--error-rate`` of ``/ispws`` calls 503 (nothing committed) and drops ``--drop-rate`` of
  answers after committing;
* the worker is SIGKILLed every ``--kill-every`` s (and at least ``--kills`` times) and restarted 0.3-1.5 s later;
* PostgreSQL is stopped as by a crash (``pg_ctl stop -m immediate``) every ``--postgres-restart-every`` s and
  started again 1-3 s later; the Temporal dev server is stopped and started again on the same file every
  ``--temporal-restart-every`` s;
* the platform's enrichment and media-list callbacks answer 503 for ``--callback-outage`` s every
  ``--callback-outage-every`` s;
* the org's escalation webhook refuses every connection, and cases must be decided within ``--review-seconds``
  (most are not, so their review timers fire and the escalation fails).

Once every case is ``filed`` or ``needs_attention``, or its workflow ended otherwise or is stuck on a failing
workflow task (or ``--deadline`` passes), the faults stop, and ``--late-decisions`` of the users send their
decision again, the same decision naming the same case number (once with the same ``Idempotency-Key``, once
with a new one), as a reviewer's client retrying long after: the same key gets the first answer again, a new
one a 409 (the case moved on) or a 404 (the user's workflow closed); none may file anything. It prints: cases
filed, finished reports at the sandbox, duplicates (cases with more than one finished report, matched by
``<espIdentifier>``), workflows FAILED, TERMINATED or TIMED_OUT (every Tipline type on the run's task queue:
``CaseWorkflow``, ``CaseFilingWorkflow``, ``ScreeningWorkflow``), workflows stuck on a failing workflow task,
content items lost (sent but missing from the case, or reported but not among the finished report's described
files), cases whose recorded report id is not the report NCMEC finished, the late decisions' answers, and the
faults done; then details, among them queue rows behind their case and side effects failed and not yet done
again. ``--save-histories`` keeps the histories of cases that end wrong.
Target: N filed, N finished, 0 duplicates, 0 failed, 0 lost, 0 wrong report ids.
Exits 1 if duplicates, failed or stuck workflows, lost items or wrong report ids > 0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import Client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api.app import create_app  # noqa: E402
from api.deps import create_api_key  # noqa: E402
from benchmarks.chaos_infra import (  # noqa: E402
    PlatformCallbacks,
    PostgresCluster,
    TemporalDevServer,
    dead_webhook,
    platform_callbacks,
    postgres_cluster,
)
from cybertipline.sandbox import SandboxConfig, create_sandbox_app  # noqa: E402
from models.records import CaseSummary, FiledReport, Role  # noqa: E402
from tipline.audit_bundle import decode_payloads_in  # noqa: E402
from tipline.db import make_engine, upgrade  # noqa: E402
from tipline.http_server import serve_app  # noqa: E402
from tipline.logging import configure_logging  # noqa: E402
from tipline.settings import NcmecCredentials, OrgSettings, ReporterSettings, Settings, orgs_toml  # noqa: E402
from tipline.synthetic import synthetic_image  # noqa: E402

XSD_PATH = (REPO.parent / "shared" / "ncmec" / "cyber_tipline.xsd").resolve()
ORG = "chaos"
SANDBOX_USER = "chaos-esp"
INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
SETTLED = ("filed", "needs_attention")
CLOSED_BADLY = ("Failed", "Terminated", "TimedOut")
REQUEST_TIMEOUT = 20.0  # per API call; a query or update waits while no worker runs
ESP_IDENTIFIER = re.compile(r"<espIdentifier>([^<]*)</espIdentifier>")
START = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - START:7.1f}s] {message}", flush=True)


# ---- options --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    cases: int
    error_rate: float
    drop_rate: float
    kills: int
    seed: int
    deadline: float
    concurrency: int
    worker_log: Path | None
    save_histories: Path | None
    kill_every: float
    postgres_restart_every: float
    temporal_restart_every: float
    callback_outage_every: float
    callback_outage: float
    review_seconds: float
    late_decisions: float


def parse_options() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="made-up users, one case each (default 100)")
    parser.add_argument("--error-rate", type=float, default=0.2, help="share of NCMEC calls answered 503")
    parser.add_argument("--drop-rate", type=float, default=0.1, help="share of answers dropped after commit")
    parser.add_argument("--kills", type=int, default=5, help="least number of worker SIGKILLs (default 5)")
    parser.add_argument("--kill-every", type=float, default=5, help="seconds between worker SIGKILLs")
    parser.add_argument("--postgres-restart-every", type=float, default=45, help="0: never restart PostgreSQL")
    parser.add_argument("--temporal-restart-every", type=float, default=60, help="0: never restart Temporal")
    parser.add_argument("--callback-outage-every", type=float, default=30, help="0: the callbacks never fail")
    parser.add_argument("--callback-outage", type=float, default=8, help="seconds each callback outage lasts")
    parser.add_argument("--review-seconds", type=float, default=3, help="review window before escalation")
    parser.add_argument("--late-decisions", type=float, default=0.5, help="share of users deciding again late")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--deadline", type=float, default=600, help="seconds to wait for every case to settle")
    parser.add_argument("--concurrency", type=int, default=20, help="users sending and reviewed at once")
    parser.add_argument("--worker-log", type=Path, default=None,
                        help="keep the worker's log here (default: a temporary file, deleted)")
    parser.add_argument("--save-histories", type=Path, default=None,
                        help="save here the histories (every run) of cases that end wrong, with their queue rows")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    return Options(cases=args.cases, error_rate=args.error_rate, drop_rate=args.drop_rate, kills=args.kills,
                   seed=seed, deadline=args.deadline, concurrency=args.concurrency, worker_log=args.worker_log,
                   save_histories=args.save_histories,
                   kill_every=args.kill_every, postgres_restart_every=args.postgres_restart_every,
                   temporal_restart_every=args.temporal_restart_every,
                   callback_outage_every=args.callback_outage_every, callback_outage=args.callback_outage,
                   review_seconds=args.review_seconds, late_decisions=args.late_decisions)


# ---- the ledger: what the platform sent --------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    content_id: str
    image: bytes

    @property
    def md5(self) -> str:
        return hashlib.md5(self.image, usedforsecurity=False).hexdigest()


@dataclass
class User:
    creator_id: str
    items: list[Item]
    case_ref: str | None = None
    case_number: int | None = None  # of the case the reviewer looked at; every decision names it
    decided: bool = False
    resent_before: int = 0
    resent_after: int = 0
    decision_attempts: int = 0
    refusal: str | None = None
    late_answers: list[tuple[str, int | None]] = field(default_factory=list)  # (same key | new key, status)


def make_users(count: int, rng: random.Random) -> list[User]:
    run = uuid.uuid4().hex[:6]
    users = []
    for n in range(count):
        items = [Item(f"post-{n:03d}-{k}", synthetic_image(rng.randrange(1 << 30))) for k in range(rng.randint(1, 3))]
        users.append(User(creator_id=f"chaos-{run}-user-{n:03d}", items=items))
    return users


# ---- infrastructure -----------------------------------------------------------------------------------------

SNAPSHOT_IGNORE = shutil.ignore_patterns(".git", ".venv", "data", "tests", "benchmarks", "__pycache__", "*.egg-info",
                                         ".ruff_cache", ".pytest_cache", ".hypothesis", "*.db", "*.log")


def snapshot_source(workdir: Path) -> tuple[Path, str]:
    """Copy the source tree as it is now, so every restarted worker runs the code the first one ran (others
    edit the checkout while the benchmark runs; a code change mid-run is a deploy, not a crash).
    Returns the copy and a short hash of its Python files."""
    target = workdir / "src"
    shutil.copytree(REPO, target, ignore=SNAPSHOT_IGNORE)
    digest = hashlib.sha256()
    for path in sorted(target.rglob("*.py")):
        digest.update(str(path.relative_to(target)).encode() + b"\0" + path.read_bytes())
    return target, digest.hexdigest()[:12]



@contextlib.asynccontextmanager
async def database(cluster: PostgresCluster) -> AsyncIterator[str]:
    """A migrated, empty database on the benchmark's own cluster."""
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute('CREATE DATABASE "tipline"')
    url = cluster.url.rsplit("/", 1)[0] + "/tipline"
    await asyncio.to_thread(upgrade, url)
    yield url


@contextlib.asynccontextmanager
async def temporal_server(workdir: Path) -> AsyncIterator[tuple[TemporalDevServer, Client]]:
    server = TemporalDevServer(workdir)
    try:
        client = await server.start()
        yield server, client
    finally:
        await asyncio.to_thread(server.stop)


@dataclass
class Sandbox:
    url: str
    app: Any
    http: httpx.AsyncClient

    def configure_faults(self, **changes: Any) -> None:
        self.app.state.sandbox.faults.configure(**changes)

    async def reports(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.url}/_sandbox/reports")
        response.raise_for_status()
        return response.json()

    async def advance_clock(self, seconds: float) -> None:
        response = await self.http.post(f"{self.url}/_sandbox/clock", json={"advance_seconds": seconds})
        response.raise_for_status()


@contextlib.asynccontextmanager
async def sandbox_server(password: str) -> AsyncIterator[Sandbox]:
    xsd = XSD_PATH if XSD_PATH.exists() else None
    say(f"sandbox schema: {xsd or 'none (XSD not found, reports are not validated)'}")
    app = create_sandbox_app(SandboxConfig(username=SANDBOX_USER, password=password, xsd_path=xsd))
    async with serve_app(app) as url, httpx.AsyncClient(auth=(SANDBOX_USER, password), timeout=60) as http:
        yield Sandbox(url=url, app=app, http=http)


def write_orgs_file(path: Path, password: str, callbacks: PlatformCallbacks, webhook_url: str) -> None:
    org = OrgSettings(
        id=ORG, name="Chaos Test Platform", platform_name="Chaos Photos",
        ncmec=NcmecCredentials(username=SANDBOX_USER, password=password),
        reporter=ReporterSettings(first_name="Chaos", last_name="Reporter", email="safety@chaos.example.com"),
        company_template="Synthetic benchmark platform", legal_url="https://example.com/legal",
        escalation_webhook_url=webhook_url, callback_secret=callbacks.secret,
        enrichment_url=f"{callbacks.url}/enrich", media_list_url=f"{callbacks.url}/media-list",
    )
    path.write_text(orgs_toml([org]))


def new_callback_secret() -> str:
    """An org's callback secret in the Standard Webhooks form."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def create_api_keys(engine: Engine) -> dict[Role, str]:
    return {role: create_api_key(engine, ORG, role, f"chaos {role}") for role in (Role.PLATFORM, Role.ADMIN)}


class WorkerProcess:
    """``python -m worker`` with the benchmark's settings; killed with SIGKILL like a crashing machine."""

    def __init__(self, settings: Settings, log: Path, source: Path) -> None:
        self.settings = settings
        self.log = log
        self.source = source
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def environment(self) -> dict[str, str]:
        s = self.settings
        values = {
            "TIPLINE_DATA_DIR": s.data_dir, "TIPLINE_DATABASE_URL": s.database_url, "TIPLINE_ORGS_FILE": s.orgs_file,
            "TIPLINE_SANDBOX_URL": s.sandbox_url, "TIPLINE_TASK_QUEUE": s.task_queue,
            "TIPLINE_TEMPORAL_ADDRESS": s.temporal_address,
            "TIPLINE_NCMEC_CALL_TIMEOUT_SECONDS": s.ncmec_call_timeout_seconds,
            "TIPLINE_UPLOAD_HEARTBEAT_TIMEOUT_SECONDS": s.upload_heartbeat_timeout_seconds,
            "TIPLINE_UPLOAD_CONCURRENCY": s.upload_concurrency,
            "TIPLINE_ENRICHMENT_RETRY_SECONDS": s.enrichment_retry_seconds,
            "TIPLINE_URGENT_REVIEW_MINUTES": s.urgent_review_minutes,
            "TIPLINE_ELEVATED_REVIEW_MINUTES": s.elevated_review_minutes,
            "TIPLINE_NORMAL_REVIEW_MINUTES": s.normal_review_minutes,
            # Exactly the platform's callbacks and its dead webhook: any other private address stays refused.
            "TIPLINE_EGRESS_PRIVATE_EXEMPTIONS": json.dumps(s.egress_private_exemptions),
        }
        if s.ncmec_xsd_path is not None:
            values["TIPLINE_NCMEC_XSD_PATH"] = s.ncmec_xsd_path
        return {**os.environ, "PYTHONPATH": str(self.source), **{key: str(value) for key, value in values.items()}}

    @property
    def running(self) -> bool:
        return self.process is not None

    @property
    def exited_by_itself(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n==== worker start {self.starts} ====\n".encode())
            self.process = subprocess.Popen([sys.executable, "-m", "worker"], cwd=self.source, env=self.environment(),
                                            stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


# ---- playing the platform and the reviewer ------------------------------------------------------------------


async def call(api: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
    """One API request; None when it raised or took longer than REQUEST_TIMEOUT."""
    try:
        return await asyncio.wait_for(api.request(method, url, **kwargs), REQUEST_TIMEOUT)
    except Exception:  # the API raising (no worker to answer a query) counts as a failed attempt
        return None


async def send_item(api: httpx.AsyncClient, key: str, user: User, item: Item) -> str:
    """Upload one item until the API accepts it; returns the case ref."""
    for attempt in range(1, 31):
        response = await call(api, "POST", "/v1/content/upload", headers={"X-API-Key": key},
                              data={"content_id": item.content_id, "creator_id": user.creator_id},
                              files={"file": (f"{item.content_id}.png", item.image, "image/png")})
        if response is not None and response.status_code == 202:
            return response.json()["case_ref"]
        await asyncio.sleep(min(0.2 * attempt, 3))
    raise RuntimeError(f"the API never accepted {item.content_id} of {user.creator_id}")


async def get_case(api: httpx.AsyncClient, key: str, case_ref: str) -> dict[str, Any] | None:
    response = await call(api, "GET", f"/v1/cases/{case_ref}", headers={"X-API-Key": key})
    return response.json() if response is not None and response.status_code == 200 else None


async def wait_for_case(api: httpx.AsyncClient, key: str, case_ref: str, until: float, media: int = 0
                        ) -> dict[str, Any] | None:
    """The case once a query answers, it is in the review queue (assessed) and shows at least ``media`` preserved
    items; None at ``until``."""
    while time.monotonic() < until:
        case = await get_case(api, key, case_ref)
        if case is not None and case["urgency"] and sum(1 for m in case["media"] if m["evidence"]) >= media:
            return case
        await asyncio.sleep(0.5)
    return None


def decision_body(user: User) -> dict[str, Any]:
    return {"case_number": user.case_number, "incident_type": INCIDENT,
            "media": [{"media_id": i.content_id, "reported": True, "classification": "B1"} for i in user.items]}


async def decide(api: httpx.AsyncClient, key: str, user: User, until: float) -> None:
    """Report every item, retrying with one Idempotency-Key until the API answers 200 or refuses."""
    assert user.case_ref is not None
    headers = {"X-API-Key": key, "Idempotency-Key": f"decision-{user.creator_id}"}
    while time.monotonic() < until:
        user.decision_attempts += 1
        response = await call(api, "POST", f"/v1/cases/{user.case_ref}/decision", json=decision_body(user),
                              headers=headers)
        if response is not None and response.status_code == 200:
            user.decided = True
            return
        if response is not None and response.status_code in (409, 422):
            user.refusal = response.text
            return
        await asyncio.sleep(min(0.5 * user.decision_attempts, 5))
    user.refusal = "no answer before the deadline"


async def play_user(api: httpx.AsyncClient, keys: dict[Role, str], user: User, rng: random.Random,
                    until: float, review_seconds: float) -> None:
    """The platform sends the user's items (some twice), the reviewer decides, a late duplicate follows."""
    platform, reviewer = keys[Role.PLATFORM], keys[Role.ADMIN]
    for item in user.items:
        user.case_ref = await send_item(api, platform, user, item)
    if rng.random() < 0.2:
        await send_item(api, platform, user, rng.choice(user.items))
        user.resent_before += 1
    assert user.case_ref is not None
    case = await wait_for_case(api, reviewer, user.case_ref, until, media=len(user.items))
    if case is None:
        user.refusal = "the case never showed all its media"
        return
    user.case_number = case["case_number"]
    # About half the reviewers take longer than the review window: those cases escalate first.
    await asyncio.sleep(rng.uniform(0, 2 * review_seconds))
    await decide(api, reviewer, user, until)
    if user.decided and rng.random() < 0.1:
        # Sent again while the case is filing: it is already in the case and must be ignored.
        await send_item(api, platform, user, rng.choice(user.items))
        user.resent_after += 1


async def play_all(api: httpx.AsyncClient, keys: dict[Role, str], users: list[User], rng: random.Random,
                   concurrency: int, until: float, review_seconds: float) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(user: User, seed: int) -> None:
        async with gate:
            await play_user(api, keys, user, random.Random(seed), until, review_seconds)

    await asyncio.gather(*(one(user, rng.randrange(1 << 30)) for user in users))


# ---- chaos ----------------------------------------------------------------------------------------------------


@dataclass
class Chaos:
    """Every fault of the run, each on its own schedule, until told to stop."""

    worker: WorkerProcess
    postgres: PostgresCluster
    temporal: TemporalDevServer
    callbacks: PlatformCallbacks
    options: Options
    rng: random.Random
    kills: int = 0
    worker_exits: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        faults = [self._kill_workers()]
        if self.options.postgres_restart_every > 0:
            faults.append(self._every(self.options.postgres_restart_every, self._restart_postgres))
        if self.options.temporal_restart_every > 0:
            faults.append(self._every(self.options.temporal_restart_every, self._restart_temporal))
        if self.options.callback_outage_every > 0:
            faults.append(self._every(self.options.callback_outage_every, self._callback_outage))
        await asyncio.gather(*faults)

    async def _kill_workers(self) -> None:
        """SIGKILL the worker every ``--kill-every`` s and restart it 0.3-1.5 s later (so it runs the rest of
        each period); restart one that died by itself."""
        while True:
            down_for = self.rng.uniform(0.3, 1.5)
            if await self._sleep(max(self.options.kill_every - down_for, 0.1)):
                return
            if self.worker.exited_by_itself:
                self.worker_exits += 1
                say("the worker had exited by itself; restarting it")
            await asyncio.to_thread(self.worker.kill)
            self.kills += 1
            await asyncio.sleep(down_for)
            self.worker.start()

    async def _every(self, period: float, fault: Any) -> None:
        while not await self._sleep(period * self.rng.uniform(0.8, 1.2)):
            await fault()

    async def _restart_postgres(self) -> None:
        say("PostgreSQL stopped (immediate, as by a crash)")
        await self.postgres.restart(down_for=self.rng.uniform(1, 3))
        say(f"PostgreSQL started again ({self.postgres.restarts})")

    async def _restart_temporal(self) -> None:
        say("Temporal dev server stopped")
        await self.temporal.restart(down_for=self.rng.uniform(0.5, 2))
        say(f"Temporal dev server started again ({self.temporal.restarts})")

    async def _callback_outage(self) -> None:
        say(f"platform callbacks down for {self.options.callback_outage:.0f} s")
        await self.callbacks.outage(self.options.callback_outage)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep; True if told to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return self.stop.is_set()


async def closed_badly(client: Client, task_queue: str) -> dict[str, list[str]]:
    """Workflow ids of the run that ended FAILED, TERMINATED or TIMED_OUT, by status and type (all runs, every
    Tipline type: CaseWorkflow, CaseFilingWorkflow, ScreeningWorkflow, all on the run's task queue)."""
    statuses = " OR ".join(f'ExecutionStatus = "{status}"' for status in CLOSED_BADLY)
    found: dict[str, list[str]] = {}
    try:
        async for execution in client.list_workflows(f'TaskQueue = "{task_queue}" AND ({statuses})'):
            status = execution.status.name if execution.status else "?"
            found.setdefault(f"{status} {execution.workflow_type}", []).append(execution.id)
    except Exception:  # Temporal restarting: nothing known this time
        return {}
    return found


async def stuck_workflows(client: Client, task_queue: str) -> list[str]:
    """Workflow ids still running whose workflow task keeps failing or timing out (nondeterminism, a bug):
    they make no progress until someone fixes the code and resets them."""
    problems = '("category=WorkflowTaskFailed", "category=WorkflowTaskTimedOut")'
    query = f'TaskQueue = "{task_queue}" AND ExecutionStatus = "Running" AND TemporalReportedProblems IN {problems}'
    try:
        return [execution.id async for execution in client.list_workflows(query)]
    except Exception:  # Temporal restarting
        return []


async def save_histories(client: Client, engine: Engine, task_queue: str, case_refs: list[str], folder: Path
                         ) -> None:
    """Every run of each case's workflow and of its filing children, as JSON, and its queue rows: to find out
    why it ended as it did."""
    files: dict[str, str] = {}
    # Decoded: the run's key goes with its temporary folder, and replay needs the plain payloads.
    codec = client.data_converter.payload_codec
    for ref in case_refs:
        query = f'TaskQueue = "{task_queue}" AND WorkflowId STARTS_WITH "{ref}"'
        async for execution in client.list_workflows(query):
            history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
            plain = json.loads(history.to_json())
            if codec is not None:
                plain = await decode_payloads_in(plain, codec)
            files[f"{execution.id.replace('/', '_')}.{execution.run_id}.json"] = json.dumps(plain)
        with Session(engine) as session:
            rows = session.exec(select(CaseSummary).where(CaseSummary.workflow_id == ref)).all()
        files[f"{ref}.queue_rows.txt"] = "".join(f"case {r.case_number}: {r.status} updated {r.updated_at}\n"
                                                 for r in rows)
    await asyncio.to_thread(write_files, folder, files)
    say(f"histories of {len(case_refs)} cases saved in {folder}")


def write_files(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


async def failure_reasons(client: Client, workflow_ids: list[str]) -> Counter[str]:
    """Why the workflows failed: the innermost cause of each run's failure, as Temporal recorded it."""
    reasons: Counter[str] = Counter()
    for workflow_id in workflow_ids:
        try:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        except Exception:
            reasons["(history unreadable)"] += 1
            continue
        last = history.events[-1]
        failure = (last.workflow_execution_failed_event_attributes.failure
                   if last.HasField("workflow_execution_failed_event_attributes") else None)
        if failure is None:
            reasons[f"({last.event_type})"] += 1
            continue
        # Messages are encrypted in the history (tipline.codec): decode the chain as the client sees it.
        error: BaseException | None = await client.data_converter.decode_failure(failure)
        messages = []
        while error is not None:
            messages.append(getattr(error, "message", None) or str(error))
            error = error.__cause__
        reasons[" <- ".join(m for m in messages if m)[:300]] += 1
    return reasons


async def queue_rows(api: httpx.AsyncClient, key: str, case_refs: set[str]) -> dict[str, dict[str, Any]]:
    """Our cases' rows in the review queue table (readable while no worker runs); per case, the row with the
    highest case number."""
    response = await call(api, "GET", "/v1/cases", headers={"X-API-Key": key},
                          params={"status": ["awaiting_review", "filing", *SETTLED], "limit": 500})
    if response is None or response.status_code != 200:
        return {}
    latest: dict[str, dict[str, Any]] = {}
    for row in response.json():
        ref = row["case_ref"]
        if ref in case_refs and (ref not in latest or row["case_number"] > latest[ref]["case_number"]):
            latest[ref] = row
    return latest


async def settled_cases(api: httpx.AsyncClient, key: str, case_refs: set[str]) -> Counter[str]:
    """Statuses of our cases: the queue row's, and for a case whose row is not settled yet, the workflow's own
    (a queue row whose write failed is retried minutes later; the case itself is what counts)."""
    rows = await queue_rows(api, key, case_refs)
    statuses = {ref: row["status"] for ref, row in rows.items()}
    unsettled = sorted(ref for ref in case_refs if statuses.get(ref) not in SETTLED)
    answers = await asyncio.gather(*(get_case(api, key, ref) for ref in unsettled))
    for ref, case in zip(unsettled, answers, strict=True):
        if case is not None:
            statuses[ref] = case["status"]
    counted = Counter(statuses.values())
    counted["not yet in the queue"] = len(case_refs) - len(statuses)
    return +counted


async def wait_until_settled(api: httpx.AsyncClient, key: str, users: list[User], chaos: Chaos,
                             client: Client, task_queue: str, until: float) -> bool:
    """Poll until every case is filed, needs attention or has a workflow that ended badly (it will not change
    any more), and at least the asked kills happened."""
    refs = {u.case_ref for u in users if u.case_ref}
    last = ""
    while time.monotonic() < until:
        statuses = await settled_cases(api, key, refs)
        dead = {ref for ids in (await closed_badly(client, task_queue)).values() for ref in ids} & refs
        stuck = set(await stuck_workflows(client, task_queue)) & refs
        line = ", ".join(f"{status} {n}" for status, n in sorted(statuses.items()))
        line += f"; workflows ended badly {len(dead)}" if dead else ""
        line += f"; workflows stuck on a failing workflow task {len(stuck)}" if stuck else ""
        if line != last:
            say(f"cases: {line}")
            last = line
        done = sum(statuses[s] for s in SETTLED) + len(dead) + len(stuck)
        if done >= len(refs) and chaos.kills >= chaos.options.kills:
            return True
        await asyncio.sleep(1)
    return False


async def decide_late(api: httpx.AsyncClient, key: str, users: list[User], rng: random.Random,
                      share: float) -> None:
    """Some reviewers' clients send their decision again long after the case was filed, with the same
    Idempotency-Key and with a new one: each answer is recorded; none may file anything."""
    for user in users:
        if not (user.decided and user.case_ref and rng.random() < share):
            continue
        for kind, idempotency_key in (("same key", f"decision-{user.creator_id}"),
                                      ("new key", f"late-{uuid.uuid4().hex}")):
            # As a careful client does: a 503 (or no answer) is sent again, with the same key, when it says.
            for _ in range(10):
                response = await call(api, "POST", f"/v1/cases/{user.case_ref}/decision", json=decision_body(user),
                                      headers={"X-API-Key": key, "Idempotency-Key": idempotency_key})
                if response is not None and response.status_code != 503:
                    break
                await asyncio.sleep(float(response.headers.get("Retry-After", 1)) if response is not None else 1)
            user.late_answers.append((kind, response.status_code if response is not None else None))


# ---- the figures ----------------------------------------------------------------------------------------------


@dataclass
class Figures:
    cases: int = 0
    filed: int = 0
    needs_attention: int = 0
    not_settled: int = 0
    finished_reports: int = 0
    duplicates: int = 0
    open_reports: int = 0
    lost_items: int = 0
    lost_detail: list[str] = field(default_factory=list)
    unfiled_items: int = 0
    extra_files: int = 0
    wrong_report_id: int = 0
    renumbered: int = 0
    unreadable: int = 0
    stale_queue_rows: int = 0
    queue_rows_behind: list[str] = field(default_factory=list)
    open_side_effects: Counter[str] = field(default_factory=Counter)
    unsettled_detail: list[str] = field(default_factory=list)
    attention_reasons: Counter[str] = field(default_factory=Counter)
    db_finished: int = 0
    db_statuses: Counter[str] = field(default_factory=Counter)
    closed_badly: dict[str, list[str]] = field(default_factory=dict)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    stuck: list[str] = field(default_factory=list)
    escalated: int = 0


async def final_cases(api: httpx.AsyncClient, key: str, users: list[User]) -> dict[str, dict[str, Any] | None]:
    """Each user's case as the workflow reports it, with a worker running and NCMEC calm."""
    until = time.monotonic() + 120
    cases = await asyncio.gather(*(wait_for_case(api, key, u.case_ref, until) for u in users if u.case_ref))
    return {u.creator_id: c for u, c in zip([u for u in users if u.case_ref], cases, strict=True)}


def owner_of(report: dict[str, Any]) -> str:
    """The reported user's id: the report's ``<espIdentifier>`` that names one of our made-up users."""
    ids = [i for i in ESP_IDENTIFIER.findall(report["report_xml"]) if i.startswith("chaos-")]
    return ids[0] if ids else "?"


def reports_by_user(reports: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        grouped.setdefault(owner_of(report), []).append(report)
    return grouped


def lost_items_of(user: User, case: dict[str, Any] | None, finished: list[dict[str, Any]], figures: Figures,
                  ended_badly: bool) -> None:
    """Count items missing from the case, reported items missing from its finished report, and every item of a
    case whose workflow ended badly without filing (it left the queue: nobody will report them)."""
    if ended_badly and not finished:
        figures.lost_items += len(user.items)
        figures.lost_detail.extend(f"{user.creator_id}/{item.content_id}: its case's workflow ended badly"
                                   for item in user.items)
        figures.unfiled_items += len(user.items)
        return
    if case is None:
        figures.unreadable += 1  # no query answered: a measuring failure, not a loss
    else:
        in_case = {m["media_id"] for m in case["media"]}
        for item in user.items:
            if item.content_id not in in_case:
                figures.lost_items += 1
                figures.lost_detail.append(f"{user.creator_id}/{item.content_id}: not in the case")
    if not finished:
        figures.unfiled_items += len(user.items)
        return
    described = {f["md5"] for f in finished[0]["files"] if f["file_details_xml"]}
    figures.extra_files += sum(1 for f in finished[0]["files"] if not f["file_details_xml"])
    for item in user.items:
        if item.md5 not in described:
            figures.lost_items += 1
            figures.lost_detail.append(f"{user.creator_id}/{item.content_id}: not in report {finished[0]['report_id']}")


def compute_figures(users: list[User], cases: dict[str, dict[str, Any] | None], reports: list[dict[str, Any]],
                    engine: Engine, closed_badly: dict[str, list[str]]) -> Figures:
    figures = Figures(cases=len(users), closed_badly=closed_badly)
    ended_badly = {workflow_id for ids in closed_badly.values() for workflow_id in ids}
    grouped = reports_by_user(reports)
    for user in users:
        case = cases.get(user.creator_id)
        status = case["status"] if case else "unknown"
        figures.filed += status == "filed"
        figures.needs_attention += status == "needs_attention"
        figures.not_settled += status not in SETTLED
        if case and case["attention_reason"]:
            figures.attention_reasons[case["attention_reason"]] += 1
        if case and case["escalated_at"]:
            figures.escalated += 1
        if case and case["case_number"] > 1:
            figures.renumbered += 1
        for failure in case["side_effect_failures"] if case else []:
            if failure["resolved_at"] is None:
                figures.open_side_effects[failure["what"]] += 1
        if status not in SETTLED:
            report_id = case["filing"]["report_id"] if case else None
            figures.unsettled_detail.append(f"{user.case_ref}: {status}, NCMEC report {report_id}")
        finished = [r for r in grouped.get(user.creator_id, []) if r["status"] == "finished"]
        figures.duplicates += len(finished) > 1
        if case and finished and case["filing"]["report_id"] != finished[0]["report_id"]:
            figures.wrong_report_id += 1
        lost_items_of(user, case, finished, figures, user.case_ref in ended_badly)
    figures.finished_reports = sum(1 for r in reports if r["status"] == "finished")
    figures.open_reports = sum(1 for r in reports if r["status"] == "open")
    with Session(engine) as session:
        rows = session.exec(select(FiledReport).where(FiledReport.org_id == ORG)).all()
        queue = session.exec(select(CaseSummary).where(CaseSummary.org_id == ORG)).all()
    figures.stale_queue_rows = sum(1 for row in queue if row.status == "awaiting_review")
    latest_rows: dict[str, CaseSummary] = {}
    for row in queue:
        if row.workflow_id not in latest_rows or row.case_number > latest_rows[row.workflow_id].case_number:
            latest_rows[row.workflow_id] = row
    for user in users:
        case, row = cases.get(user.creator_id), latest_rows.get(user.case_ref or "")
        if case is not None and (row is None or row.status != case["status"]):
            figures.queue_rows_behind.append(f"{user.case_ref}: case {case['status']}, queue row "
                                             f"{row.status if row else 'missing'}")
    figures.db_statuses = Counter(r.status for r in rows)
    figures.db_finished = figures.db_statuses["finished"]
    return figures


def print_figures(figures: Figures, users: list[User], chaos: Chaos, wall: float, options: Options) -> None:
    n = figures.cases
    badly = sum(len(ids) for ids in figures.closed_badly.values())
    late = Counter(answer for u in users for answer in u.late_answers)
    print()
    print(f"=== chaos filing: {n} cases, error rate {options.error_rate:.0%}, drop rate {options.drop_rate:.0%}, "
          f"seed {options.seed} ===")
    print(f"cases filed:                        {figures.filed} / {n}")
    print(f"finished reports at the sandbox:    {figures.finished_reports}")
    print(f"duplicates:                         {figures.duplicates}")
    print(f"workflows FAILED/TERMINATED/TIMED_OUT: {badly}"
          + "".join(f" ({status} {len(ids)})" for status, ids in sorted(figures.closed_badly.items())))
    print(f"workflows stuck on a failing workflow task (running, no progress): {len(figures.stuck)}")
    print(f"content items lost:                 {figures.lost_items}")
    print(f"cases whose recorded report id is not the report NCMEC finished: {figures.wrong_report_id}")
    print(f"late decisions re-sent after filing: {sum(late.values())}, answered "
          + (", ".join(f"{kind} {code} x{count}" for (kind, code), count in sorted(late.items(), key=str))
             or "-")
          + f"; a new decision accepted {late[('new key', 200)]} (a same-key 200 is the first answer again)")
    print(f"reports left open:                  {figures.open_reports}")
    print(f"cases needing attention:            {figures.needs_attention}")
    print(f"faults: worker kills {chaos.kills} (every {options.kill_every:g} s), worker exits by itself "
          f"{chaos.worker_exits}, PostgreSQL restarts {chaos.postgres.restarts}, Temporal restarts "
          f"{chaos.temporal.restarts}, callback outages {chaos.callbacks.outages} "
          f"({chaos.callbacks.refused} calls refused, {chaos.callbacks.answered} answered), review timers fired "
          f"{figures.escalated} (the escalation "
          f"webhook refusing every connection)")
    print(f"wall time:                          {wall:.1f} s")
    print("--- details ---")
    for reason, count in figures.failure_reasons.most_common():
        print(f"workflows failed ({count}): {reason}")
    for status, ids in sorted(figures.closed_badly.items()):
        for workflow_id in ids[:20]:
            print(f"ended {status}: {workflow_id}")
    for workflow_id in figures.stuck:
        print(f"stuck: {workflow_id}")
    print(f"content items sent (distinct):      {sum(len(u.items) for u in users)}"
          f" (+{sum(u.resent_before for u in users)} re-sent before the decision,"
          f" +{sum(u.resent_after for u in users)} while filing)")
    print(f"decisions accepted:                 {sum(u.decided for u in users)} / {n}"
          f" ({sum(u.decision_attempts for u in users)} attempts)")
    print(f"cases not settled:                  {figures.not_settled}")
    print(f"cases whose state no query could read: {figures.unreadable}")
    print(f"items in cases without a finished report: {figures.unfiled_items}")
    print(f"extra files in finished reports (uploaded again, no details): {figures.extra_files}")
    print(f"cases numbered 2 or more (every user has exactly one case): {figures.renumbered}")
    print(f"review-queue rows still awaiting review (every case was decided): {figures.stale_queue_rows}")
    print(f"database filed_report rows by status: {dict(sorted(figures.db_statuses.items()))}")
    print(f"queue rows behind their case at the end (a failed row write waits for its retry): "
          f"{len(figures.queue_rows_behind)}")
    for line in figures.queue_rows_behind[:10]:
        print(f"  queue row behind: {line}")
    print("side effects failed and not yet done again, by kind: "
          + (", ".join(f"{what} {n}" for what, n in figures.open_side_effects.most_common()) or "none"))
    for reason, count in figures.attention_reasons.most_common():
        print(f"needs attention ({count}): {reason}")
    for user in users:
        if user.refusal:
            print(f"decision for {user.creator_id} not accepted: {user.refusal[:300]}")
    for line in figures.unsettled_detail:
        print(f"not settled: {line}")
    for line in figures.lost_detail[:20]:
        print(f"lost: {line}")


async def print_orphans(sandbox: Sandbox, reports: list[dict[str, Any]]) -> None:
    """Open reports a lost /submit answer left behind, and what NCMEC's 24 h expiry does to them."""
    grouped = reports_by_user(reports)
    orphans = [r for r in reports if r["status"] == "open"
               and any(o["status"] == "finished" for o in grouped.get(owner_of(r), []))]
    await sandbox.advance_clock(25 * 3600)
    after = await sandbox.reports()
    statuses = Counter(r["status"] for r in after)
    print("--- open reports orphaned by lost /submit answers ---")
    print(f"open reports whose case has a finished report: {len(orphans)}")
    print(f"after moving the sandbox clock 25 h forward: still open {statuses['open']}, "
          f"expired unfinished {statuses['expired']}, finished {statuses['finished']}")


# ---- the run --------------------------------------------------------------------------------------------------


async def run(options: Options) -> int:
    configure_logging("WARNING")
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    rng = random.Random(options.seed)
    users = make_users(options.cases, rng)
    password = "sandbox-" + uuid.uuid4().hex
    say(f"seed {options.seed}; {len(users)} users, {sum(len(u.items) for u in users)} items")
    with tempfile.TemporaryDirectory(prefix="tipline-chaos-") as tmp, dead_webhook() as webhook_url:
        workdir = Path(tmp)
        source, source_hash = snapshot_source(workdir)
        say(f"worker code: snapshot of {REPO} (Python files hash {source_hash})")
        async with postgres_cluster() as cluster, database(cluster) as url, \
                temporal_server(workdir) as (temporal, client), sandbox_server(password) as sandbox, \
                platform_callbacks(new_callback_secret()) as callbacks:
            say(f"own PostgreSQL on port {cluster.port}, own Temporal dev server at {temporal.address}")
            write_orgs_file(workdir / "orgs.toml", password, callbacks, webhook_url)
            settings = Settings(
                data_dir=workdir, database_url=url, orgs_file=workdir / "orgs.toml",
                sandbox_url=f"{sandbox.url}/ispws", ncmec_xsd_path=XSD_PATH if XSD_PATH.exists() else None,
                task_queue=f"tipline-chaos-{uuid.uuid4().hex[:8]}", temporal_address=temporal.address,
                ncmec_call_timeout_seconds=3, upload_heartbeat_timeout_seconds=2, upload_concurrency=2,
                enrichment_retry_seconds=1, urgent_review_minutes=options.review_seconds / 60,
                elevated_review_minutes=options.review_seconds / 60,
                normal_review_minutes=options.review_seconds / 60,
                egress_private_exemptions=[httpx.URL(u).netloc.decode() for u in (callbacks.url, webhook_url)],
            )
            engine = make_engine(url)
            worker = WorkerProcess(settings, options.worker_log or workdir / "worker.log", source)
            chaos = Chaos(worker, cluster, temporal, callbacks, options, random.Random(rng.randrange(1 << 30)))
            try:
                return await exercise(options, settings, engine, client, sandbox, chaos, users, rng)
            finally:
                worker.kill()
                engine.dispose()


async def exercise(options: Options, settings: Settings, engine: Engine, client: Client, sandbox: Sandbox,
                   chaos: Chaos, users: list[User], rng: random.Random) -> int:
    keys = create_api_keys(engine)
    worker = chaos.worker
    app = create_app(settings, temporal=client, engine=engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tipline.chaos") as api:
        started = time.monotonic()
        worker.start()
        sandbox.configure_faults(error_rate=options.error_rate, drop_rate=options.drop_rate, seed=options.seed)
        say(f"faults on (NCMEC error {options.error_rate:.0%}, drop {options.drop_rate:.0%}, worker kill every "
            f"{options.kill_every:g} s, PostgreSQL restart every {options.postgres_restart_every:g} s, Temporal "
            f"restart every {options.temporal_restart_every:g} s, callback outage of {options.callback_outage:g} s "
            f"every {options.callback_outage_every:g} s, dead escalation webhook, review window "
            f"{options.review_seconds:g} s)")
        chaos_task = asyncio.create_task(chaos.run())
        until = started + options.deadline
        await play_all(api, keys, users, rng, options.concurrency, until, options.review_seconds)
        say(f"decisions accepted: {sum(u.decided for u in users)} / {len(users)}")
        settled = await wait_until_settled(api, keys[Role.ADMIN], users, chaos, client, settings.task_queue, until)
        chaos.stop.set()
        await chaos_task
        sandbox.configure_faults(error_rate=0.0, drop_rate=0.0)
        if not worker.running or worker.exited_by_itself:
            worker.kill()
            worker.start()
        say("every case settled; faults off" if settled else "deadline passed; faults off")
        await decide_late(api, keys[Role.ADMIN], users, random.Random(rng.randrange(1 << 30)),
                          options.late_decisions)
        await asyncio.sleep(3)  # a late decision that was wrongly accepted would be filing by now
        cases = await final_cases(api, keys[Role.ADMIN], users)
        wall = time.monotonic() - started
        reports = await sandbox.reports()
        figures = compute_figures(users, cases, reports, engine, await closed_badly(client, settings.task_queue))
        figures.failure_reasons = await failure_reasons(
            client, [i for kind, ids in figures.closed_badly.items() if kind.startswith("FAILED") for i in ids])
        figures.stuck = await stuck_workflows(client, settings.task_queue)
        worker.kill()
        print_figures(figures, users, chaos, wall, options)
        analyzer = app.state.upload_analyzer
        print(f"uploads hashed by the API: {analyzer.analysed}; handed to the detection workers: {analyzer.handed_on}")
        if options.save_histories is not None:
            # The user's workflow ids: a filing child's id starts with its parent's.
            wrong = {line.split(":")[0] for line in figures.queue_rows_behind} | set(figures.stuck)
            wrong |= {i for ids in figures.closed_badly.values() for i in ids}
            await save_histories(client, engine, settings.task_queue, sorted({w.split("/")[0] for w in wrong}),
                                 options.save_histories)
        await print_orphans(sandbox, reports)
    failed = sum(len(ids) for ids in figures.closed_badly.values())
    return 1 if figures.duplicates or figures.lost_items or failed or figures.stuck or figures.wrong_report_id else 0


def main() -> None:
    options = parse_options()
    sys.exit(asyncio.run(run(options)))


if __name__ == "__main__":
    main()
