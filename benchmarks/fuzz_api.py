"""Fuzz the API from its OpenAPI document with schemathesis, as a platform and as a reviewer. A script:

    .venv/bin/python benchmarks/fuzz_api.py [--max-examples 50] [--time-limit 80]

It starts a Temporal dev server (in memory), a temporary SQLite database and evidence store, and the API on
loopback HTTP, with one org and two keys: ``platform`` and ``child_safety_moderator``. No worker runs, so the
generated content is accepted into workflows that never execute: no generated ``media_url`` is ever fetched.
Every operation gets ``--max-examples`` valid and as many invalid requests, each sent with both keys, until
``--time-limit`` seconds have passed. It prints the requests made, the server errors, the response-schema
violations, the undocumented status codes and content types, and what each operation answered.
Exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api.app import create_app  # noqa: E402
from api.deps import create_api_key  # noqa: E402
from models.records import Role  # noqa: E402
from tests.api_fuzz import FuzzReport, fuzz_api  # noqa: E402
from tipline.codec import throwaway_converter  # noqa: E402
from tipline.db import make_engine, upgrade  # noqa: E402
from tipline.http_server import serve_app  # noqa: E402
from tipline.logging import configure_logging  # noqa: E402
from tipline.settings import NcmecCredentials, OrgSettings, ReporterSettings, Settings, orgs_toml  # noqa: E402
from tipline.temporal import temporal_binary  # noqa: E402
from workflows import search_attributes as sa  # noqa: E402

ORG = "fuzz"


async def run(max_examples: int, time_limit: float) -> FuzzReport:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), search_attributes=[key for key, _ in sa.ALL],
        data_converter=throwaway_converter(), dev_server_log_level="error",
    )
    try:
        with tempfile.TemporaryDirectory(prefix="tipline-fuzz-") as scratch:
            data_dir = Path(scratch)
            org = OrgSettings(
                id=ORG, name="Fuzz Platform", ncmec=NcmecCredentials(username="fuzz", password="fuzz-password"),
                reporter=ReporterSettings(email="safety@fuzz.example.com"),
            )
            (data_dir / "orgs.toml").write_text(orgs_toml([org]))
            settings = Settings(data_dir=data_dir, task_queue="tipline-fuzz-no-worker",
                                temporal_address=env.client.service_client.config.target_host)
            upgrade(settings.resolved_database_url)
            engine = make_engine(settings.resolved_database_url)
            keys = {role.value: create_api_key(engine, ORG, role, f"fuzz {role.value}")
                    for role in (Role.PLATFORM, Role.CHILD_SAFETY_MODERATOR)}
            app = create_app(settings, temporal=env.client, engine=engine)
            async with serve_app(app) as url:
                # schemathesis is synchronous: it runs in a thread while this loop serves the API.
                return await asyncio.to_thread(fuzz_api, url, keys, max_examples=max_examples,
                                               time_limit=time_limit)
    finally:
        await env.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=50, help="per operation and generation mode")
    parser.add_argument("--time-limit", type=float, default=80.0, help="seconds of fuzzing at most")
    args = parser.parse_args()
    configure_logging("WARNING")
    report = asyncio.run(run(args.max_examples, args.time_limit))
    print(report.summary())
    print("answers per operation:")
    for label, statuses in sorted(report.statuses.items()):
        print(f"  {label}: " + ", ".join(f"{status}×{count}" for status, count in sorted(statuses.items())))
    sys.exit(0 if report.clean else 1)


if __name__ == "__main__":
    main()
