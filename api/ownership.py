"""Ownership of every id that arrives from outside: looked up in the database, never read from its spelling.

Each object is found by its id and its recorded org compared with the caller's; an id that is another org's and
one that does not exist get the same 404, so a caller learns nothing about ids that are not theirs. Media is
owned through its case, a report's files through their report. The role check runs first (each dependency
takes the endpoint's role), so a role that may not use an endpoint gets its 403 whatever the id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import DbEngine, DbSession, NcmecReviewer, Principal, RecordsReader, Registry
from api.problems import ProblemError
from api.requests import ReportId, WorkflowRef
from models.records import FiledReport, RefKind, TriageItem

# Report ids are database keys (INTEGER); a larger number names nothing, and must not reach the database driver.
MAX_REPORT_ID = 2**31 - 1


async def _owned_ref(registry: Registry, principal: Principal, kind: RefKind, ref: str, missing: str) -> str:
    if await run_in_threadpool(registry.org_of, kind, ref) != principal.org_id:
        raise ProblemError(404, missing)
    return ref


async def owned_case_ref(case_ref: WorkflowRef, principal: NcmecReviewer, registry: Registry) -> str:
    return await _owned_ref(registry, principal, RefKind.CASE, case_ref, "No such case")


async def owned_screening_ref(screening_ref: WorkflowRef, principal: NcmecReviewer, registry: Registry) -> str:
    return await _owned_ref(registry, principal, RefKind.SCREENING, screening_ref, "No such screening")


def triage_item_of(engine: DbEngine, principal: Principal, screening_ref: str) -> TriageItem:
    with Session(engine) as session:
        row = session.get(TriageItem, screening_ref)
    if row is None or row.org_id != principal.org_id:
        raise ProblemError(404, "No such triage item")
    return row


async def owned_triage_item(screening_ref: WorkflowRef, principal: NcmecReviewer, engine: DbEngine) -> TriageItem:
    return await run_in_threadpool(triage_item_of, engine, principal, screening_ref)


def report_of(session: Session, principal: Principal, report_id: int) -> FiledReport:
    report = session.get(FiledReport, report_id) if 0 < report_id <= MAX_REPORT_ID else None
    if report is None or report.org_id != principal.org_id:
        raise ProblemError(404, "No such report")
    return report


def owned_report(report_id: ReportId, principal: RecordsReader, session: DbSession) -> FiledReport:
    return report_of(session, principal, report_id)


OwnedCaseRef = Annotated[str, Depends(owned_case_ref)]
OwnedScreeningRef = Annotated[str, Depends(owned_screening_ref)]
OwnedTriageItem = Annotated[TriageItem, Depends(owned_triage_item)]
OwnedReport = Annotated[FiledReport, Depends(owned_report)]
