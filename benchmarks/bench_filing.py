"""Benchmark filing: one case with ``--files`` files through Tipline to the CyberTipline sandbox, beside a bare
httpx sequence of the same calls in the same run. A script, not a test:

    .venv/bin/python benchmarks/bench_filing.py [--files 20] [--rounds 3] [--size 640x480] [--postgres URL]

One Temporal dev server, one sandbox (validating against NCMEC's XSD from ``../shared/ncmec``), a database (a
temporary SQLite file, or with ``--postgres URL`` a scratch database there), the case worker and the API, all
on loopback in this process. Each round:

1. **Tipline.** ``--files`` synthetic PNGs are uploaded for one made-up user through ``POST /v1/content/upload``
   and hashed (untimed). Then the clock starts, a reviewer's decision reports every file, and the clock stops
   when ``GET /v1/cases/{case_ref}`` shows the case filed (polled every 10 ms). The sandbox's own record of
   that report gives a second figure: from its ``/submit`` to its ``/finish``, which leaves out the workflow's
   start and the poll.
2. **Bare.** The very report XML and file-details XML the sandbox recorded for Tipline's report (with the new
   report and file ids) and the same file bytes go through ``/submit``, one ``/upload`` and ``/fileinfo`` per
   file, and ``/finish``, one call after another from one ``httpx.AsyncClient``: the least any client needs.

Target (issue 16): Tipline at most 1.5x the bare sequence. Tipline uploads up to ``upload_concurrency`` files at
once (4 by default) and encrypts them at rest, so it decrypts each file as it sends it; the bare loop sends bytes
it holds in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx

# Run as a script: its own folder is on the path, and bench_parts puts the checkout there too.
from bench_parts import SlowTaskCounter, core_runtime, load_average, scratch_database, temporal_server

from api.app import create_app
from api.deps import create_api_key
from cybertipline.sandbox import SandboxConfig, create_sandbox_app
from models.records import Role
from tipline.db import make_engine
from tipline.http_server import serve_app
from tipline.logging import configure_logging
from tipline.settings import NcmecCredentials, OrgSettings, ReporterSettings, Settings, orgs_toml
from tipline.synthetic import synthetic_image
from worker import case_worker

SHARED_XSD = Path(__file__).resolve().parents[2] / "shared" / "ncmec" / "cyber_tipline.xsd"
ORG = "bench"
INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
POLL = 0.01
T = TypeVar("T")
DEADLINE = 300.0


@dataclass(frozen=True)
class Options:
    files: int
    rounds: int
    size: tuple[int, int]
    postgres: str | None
    xsd: Path
    ncmec_rate: float | None


def parse_options() -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20, help="files in the case (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="cases filed, each beside a bare sequence (default 3)")
    parser.add_argument("--size", default="640x480", help="each synthetic PNG's size, WxH (default 640x480)")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="create a scratch database on this PostgreSQL server instead of a SQLite file")
    parser.add_argument("--ncmec-rate", type=float, default=None, metavar="PER_SECOND",
                        help="NCMEC_ACTIVITIES_PER_SECOND for the run (default: off, to measure Tipline's own cost; "
                             "the deployment default is 5)")
    parser.add_argument("--xsd", type=Path, default=SHARED_XSD, help="NCMEC's report schema for the sandbox")
    args = parser.parse_args()
    match = re.fullmatch(r"(\d+)x(\d+)", args.size)
    if not match or args.files < 1 or args.rounds < 1:
        parser.error("--size is WxH; --files and --rounds are positive")
    return Options(files=args.files, rounds=args.rounds, size=(int(match[1]), int(match[2])),
                   postgres=args.postgres, xsd=args.xsd, ncmec_rate=args.ncmec_rate)


@dataclass(frozen=True)
class Round:
    tipline_seconds: float  # decision accepted -> the API shows the case filed
    tipline_ncmec_seconds: float  # the sandbox's /submit -> /finish of Tipline's report
    bare_seconds: float
    report_id: int


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    deadline = time.monotonic() + DEADLINE
    while (result := await probe()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL)
    return result


async def file_through_tipline(api: httpx.AsyncClient, keys: dict[Role, str], images: list[bytes]) -> tuple[float, int]:
    user = f"bench-user-{uuid.uuid4().hex[:10]}"
    platform, reviewer = {"X-API-Key": keys[Role.PLATFORM]}, {"X-API-Key": keys[Role.ADMIN]}
    case_ref = ""
    for n, image in enumerate(images):
        response = await api.post("/v1/content/upload", headers=platform,
                                  data={"content_id": f"file-{n:03d}", "creator_id": user},
                                  files={"file": (f"file-{n:03d}.png", image, "image/png")})
        response.raise_for_status()
        case_ref = response.json()["case_ref"]

    async def case() -> dict:
        response = await api.get(f"/v1/cases/{case_ref}", headers=reviewer)
        response.raise_for_status()
        return response.json()

    async def hashed() -> dict | None:
        current = await case()
        analysed = [m for m in current["media"] if m["analysis"] is not None]
        return current if len(analysed) == len(images) else None

    await eventually(hashed, "every file hashed in the case")
    decision = {"case_number": 1, "incident_type": INCIDENT,
                "media": [{"media_id": f"file-{n:03d}", "reported": True, "classification": "B1"}
                          for n in range(len(images))]}
    started = time.perf_counter()
    response = await api.post(f"/v1/cases/{case_ref}/decision", json=decision, headers=reviewer)
    response.raise_for_status()

    async def filed() -> dict | None:
        current = await case()
        if current["status"] == "needs_attention":
            raise RuntimeError(f"the case needs attention: {current.get('attention_reason')}")
        return current if current["status"] == "filed" else None

    done = await eventually(filed, "the case filed")
    return time.perf_counter() - started, int(done["filing"]["report_id"])


async def bare_sequence(ncmec: httpx.AsyncClient, recorded: dict, images_by_name: dict[str, bytes]) -> float:
    """Tipline's report again, call by call: the least a client does to file the same CyberTip."""
    started = time.perf_counter()
    submitted = await ncmec.post("/ispws/submit", content=recorded["report_xml"].encode(),
                                 headers={"Content-Type": "text/xml; charset=utf-8"})
    report_id = _tag(submitted.text, "reportId")
    for stored in recorded["files"]:
        uploaded = await ncmec.post("/ispws/upload", data={"id": report_id},
                                    files={"file": (stored["filename"], images_by_name[stored["filename"]],
                                                    "image/png")})
        file_id = _tag(uploaded.text, "fileId")
        details = re.sub(r"<reportId>\d+</reportId>", f"<reportId>{report_id}</reportId>",
                         stored["file_details_xml"])
        details = re.sub(r"<fileId>[^<]+</fileId>", f"<fileId>{file_id}</fileId>", details)
        answered = await ncmec.post("/ispws/fileinfo", content=details.encode(),
                                    headers={"Content-Type": "text/xml; charset=utf-8"})
        _tag(answered.text, "responseCode", expect="0")
    finished = await ncmec.post("/ispws/finish", data={"id": report_id})
    _tag(finished.text, "responseCode", expect="0")
    return time.perf_counter() - started


def _tag(document: str, name: str, expect: str | None = None) -> str:
    match = re.search(rf"<{name}>([^<]+)</{name}>", document)
    if match is None or (expect is not None and match[1] != expect):
        raise RuntimeError(f"unexpected sandbox answer: {document[:300]}")
    return match[1]


def bench_settings(workdir: Path, database_url: str, temporal_address: str, sandbox_url: str, options: Options,
                   password: str) -> Settings:
    org = OrgSettings(
        id=ORG, name="Bench Platform", platform_name="Bench Photos",
        ncmec=NcmecCredentials(username="bench-esp", password=password),
        reporter=ReporterSettings(first_name="Bench", last_name="Reporter", email="safety@bench.example.com"),
        company_template="Synthetic benchmark platform", legal_url="https://example.com/legal",
    )
    orgs_file = workdir / "orgs.toml"
    orgs_file.write_text(orgs_toml([org]))
    return Settings(data_dir=workdir, database_url=database_url, orgs_file=orgs_file,
                    task_queue=f"bench-filing-{uuid.uuid4().hex[:8]}", temporal_address=temporal_address,
                    sandbox_url=f"{sandbox_url}/ispws", ncmec_xsd_path=options.xsd,
                    ncmec_activities_per_second=options.ncmec_rate)


async def run(options: Options, workdir: Path) -> list[Round]:
    password = uuid.uuid4().hex  # made up for this run: the sandbox and the org's settings share it
    sandbox_app = create_sandbox_app(SandboxConfig(username="bench-esp", password=password, xsd_path=options.xsd))
    rounds: list[Round] = []
    async with (temporal_server(core_runtime(SlowTaskCounter())) as env, serve_app(sandbox_app) as sandbox_url,
                scratch_database(options.postgres, workdir) as (database_url, _)):
        engine = make_engine(database_url)
        settings = bench_settings(workdir, database_url, env.client.service_client.config.target_host, sandbox_url,
                                  options, password)
        keys = {role: create_api_key(engine, ORG, role, f"bench {role}") for role in (Role.PLATFORM, Role.ADMIN)}
        app = create_app(settings, temporal=env.client, engine=engine)
        async with (case_worker(env.client, settings, engine), serve_app(app) as api_url,
                    httpx.AsyncClient(base_url=api_url, timeout=60) as api,
                    httpx.AsyncClient(base_url=sandbox_url, auth=("bench-esp", password), timeout=60) as ncmec):
            for number in range(options.rounds):
                images = [synthetic_image(10_000 * number + n, size=options.size) for n in range(options.files)]
                tipline_seconds, report_id = await file_through_tipline(api, keys, images)
                recorded = (await ncmec.get(f"/_sandbox/reports/{report_id}")).json()
                ncmec_side = (datetime.fromisoformat(recorded["finished_at"])
                              - datetime.fromisoformat(recorded["opened_at"])).total_seconds()
                by_name = {f"file-{n:03d}.png": image for n, image in enumerate(images)}
                bare_seconds = await bare_sequence(ncmec, recorded, by_name)
                rounds.append(Round(tipline_seconds, ncmec_side, bare_seconds, report_id))
        engine.dispose()
    return rounds


def print_report(options: Options, rounds: list[Round], load_before: str, file_bytes: int) -> None:
    print(f"Tipline filing: {options.rounds} cases of {options.files} files "
          f"({options.size[0]}x{options.size[1]} PNGs, about {file_bytes:,} bytes each)")
    print(f"load average (1/5/15 min): {load_before} at start, {load_average()} at end")
    rate = f"{options.ncmec_rate:g} per second" if options.ncmec_rate else "off"
    print(f"NCMEC activity rate limit (NCMEC_ACTIVITIES_PER_SECOND): {rate}")
    print(f"{'round':>6}{'Tipline, decision->filed':>28}{'Tipline, submit->finish':>26}{'bare httpx':>12}{'ratio':>8}")
    for number, r in enumerate(rounds, 1):
        print(f"{number:>6}{r.tipline_seconds:>27.2f}s{r.tipline_ncmec_seconds:>25.2f}s{r.bare_seconds:>11.2f}s"
              f"{r.tipline_seconds / r.bare_seconds:>7.2f}x")
    median = statistics.median
    print(f"{'median':>6}{median(r.tipline_seconds for r in rounds):>27.2f}s"
          f"{median(r.tipline_ncmec_seconds for r in rounds):>25.2f}s{median(r.bare_seconds for r in rounds):>11.2f}s"
          f"{median(r.tipline_seconds / r.bare_seconds for r in rounds):>7.2f}x   (target <= 1.5x)")


async def main() -> None:
    options = parse_options()
    configure_logging("WARNING")
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="tipline-bench-filing-") as tmp:
        rounds = await run(options, Path(tmp))
    print_report(options, rounds, load_before, len(synthetic_image(0, size=options.size)))


if __name__ == "__main__":
    asyncio.run(main())
