"""One filed_report row per filing attempt, enforced by the database: a refile never reuses an abandoned report,
and two submits racing for one attempt cannot both become the case's report."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.filing import ATTEMPT_CLOSED_ERROR, FilingActivities
from activities.ncmec_filing import NcmecFiling
from cybertipline.enums import IncidentType
from models.case import ReviewDecision
from models.filing import AbandonReportInput, OpenReportInput
from models.records import FiledReport, ReportStatus
from tests.helpers import ORG, Sandbox
from tipline.evidence import EvidenceStore
from tipline.settings import OrgSettings, Settings


def attempt_of(case_ref: str, attempt: int = 1) -> OpenReportInput:
    return OpenReportInput(org_id=ORG, workflow_id=case_ref, case_number=1, user_id="user-attempts", attempt=attempt,
                           decision=ReviewDecision(reviewer_id="admin:1", incident_type=IncidentType.CHILD_PORNOGRAPHY),
                           incident_at=datetime.now(UTC))


def rows_of(engine: Engine, case_ref: str) -> list[FiledReport]:
    with Session(engine) as session:
        return list(session.exec(select(FiledReport).where(FiledReport.workflow_id == case_ref)
                                 .order_by(FiledReport.attempt)).all())


class RacingFiling(NcmecFiling):
    """Both tries of one attempt look for its row before either records one: as when a submit outlives its
    timeout and Temporal starts the retry while the first try is still waiting on NCMEC."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.both_looked = threading.Barrier(2, timeout=10)
        self.retracted: list[int] = []

    def _attempt_row(self, request: OpenReportInput) -> FiledReport | None:
        found = super()._attempt_row(request)
        self.both_looked.wait()
        return found

    async def _retract_duplicate(self, org: OrgSettings, report_id: int) -> None:
        self.retracted.append(report_id)
        await super()._retract_duplicate(org, report_id)


async def test_two_racing_submits_record_one_report_and_retract_the_other(
    settings: Settings, engine: Engine, sandbox: Sandbox
) -> None:
    filing = FilingActivities(settings, engine, EvidenceStore.from_settings(settings))
    racing = filing.ncmec = RacingFiling(settings, engine, EvidenceStore.from_settings(settings))
    case_ref = f"case-{uuid.uuid4().hex}"
    first, second = await asyncio.gather(ActivityEnvironment().run(filing.open_report, attempt_of(case_ref)),
                                         ActivityEnvironment().run(filing.open_report, attempt_of(case_ref)))

    assert first.report_id == second.report_id
    [row] = rows_of(engine, case_ref)
    assert row.ncmec_report_id == first.report_id and row.attempt == 1
    [duplicate] = racing.retracted
    at_ncmec = {r["report_id"]: r["status"] for r in await sandbox.reports()}
    assert duplicate != row.ncmec_report_id
    assert at_ncmec[row.ncmec_report_id] == "open" and at_ncmec[duplicate] == "retracted"


async def test_a_refile_never_reuses_an_abandoned_report(settings: Settings, engine: Engine) -> None:
    filing = FilingActivities(settings, engine, EvidenceStore.from_settings(settings))
    env = ActivityEnvironment()
    case_ref = f"case-{uuid.uuid4().hex}"
    opened = await env.run(filing.open_report, attempt_of(case_ref))
    await env.run(filing.abandon_report, AbandonReportInput(org_id=ORG, report_id=opened.report_id,
                                                            reason="NCMEC deleted the unfinished report"))

    with pytest.raises(ApplicationError) as refused:
        await env.run(filing.open_report, attempt_of(case_ref))  # the closed attempt again
    assert refused.value.type == ATTEMPT_CLOSED_ERROR and refused.value.non_retryable
    refiled = await env.run(filing.open_report, attempt_of(case_ref, attempt=2))

    assert refiled.report_id != opened.report_id
    assert [(r.attempt, r.status) for r in rows_of(engine, case_ref)] == [(1, ReportStatus.RETRACTED),
                                                                          (2, ReportStatus.OPEN)]


async def test_a_refile_after_a_failed_abandon_opens_a_new_report(settings: Settings, engine: Engine) -> None:
    """The abandon never reached NCMEC, so attempt 1's row is still open: attempt 2 must not take it over."""
    filing = FilingActivities(settings, engine, EvidenceStore.from_settings(settings))
    env = ActivityEnvironment()
    case_ref = f"case-{uuid.uuid4().hex}"
    opened = await env.run(filing.open_report, attempt_of(case_ref))
    again = await env.run(filing.open_report, attempt_of(case_ref))  # a retry of attempt 1 finds its report
    refiled = await env.run(filing.open_report, attempt_of(case_ref, attempt=2))

    assert again.report_id == opened.report_id != refiled.report_id
    assert [r.attempt for r in rows_of(engine, case_ref)] == [1, 2]


def test_the_database_refuses_a_second_row_for_one_attempt(engine: Engine) -> None:
    case_ref = f"case-{uuid.uuid4().hex}"

    def row(report_id: int) -> FiledReport:
        return FiledReport(org_id=ORG, workflow_id=case_ref, case_number=1, attempt=1, ncmec_environment="sandbox",
                           ncmec_report_id=report_id, status=ReportStatus.OPEN, report_xml="<r/>",
                           submitted_by="admin:1", opened_at=datetime.now(UTC))

    base = uuid.uuid4().int % 10**12
    with Session(engine) as session:
        session.add(row(base))
        session.commit()
        session.add(row(base + 1))
        with pytest.raises(IntegrityError):
            session.commit()
