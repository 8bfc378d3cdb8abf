"""A case's timeline for auditors and Moderator Managers: every event of the user's cases, in order."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import DbEngine, Principal, Registry, Store, Temporal, require
from api.ownership import _owned_ref
from api.problems import PROBLEM_RESPONSES
from api.requests import WorkflowRef
from models.records import RefKind, Role
from models.timeline import Timeline
from tipline.timeline_source import case_timeline

router = APIRouter(prefix="/v1/cases", tags=["audit"], responses=PROBLEM_RESPONSES)
# Who may read everything that happened to a case, reviewers' views and claims included.
TIMELINE_ROLES = frozenset({Role.AUDITOR, Role.MODERATOR_MANAGER})
TimelineReader = Annotated[Principal, Depends(require(TIMELINE_ROLES))]


async def _timeline_case_ref(case_ref: WorkflowRef, principal: TimelineReader, registry: Registry) -> str:
    # The role check runs first (403 whatever the id); another org's case and none at all are the same 404.
    return await _owned_ref(registry, principal, RefKind.CASE, case_ref, "No such case")


@router.get("/{case_ref}/timeline", response_model=Timeline,
            summary="Every event of the user's cases, across runs and case numbers (auditors, Moderator Managers)")
async def timeline(case_ref: Annotated[str, Depends(_timeline_case_ref)], temporal: Temporal, engine: DbEngine,
                   store: Store) -> Timeline:
    # The client's converter decodes with the deployment's payload keys (tipline.codec).
    return await case_timeline(temporal, engine, store, temporal.data_converter, case_ref)
