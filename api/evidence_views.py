"""Showing a person preserved media: decrypt as a stream, and record who looked at what, when."""

from __future__ import annotations

from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.deps import Principal
from api.problems import ProblemError
from models.records import MediaView
from tipline.evidence import EvidenceMissing, EvidenceStore


async def evidence_response(store: EvidenceStore, engine: Engine, principal: Principal, *, sha256: str,
                            content_type: str | None, ref: str, media_id: str) -> StreamingResponse:
    try:
        # Opening authenticates the header and the last chunk: a missing or damaged object fails before headers.
        reader = await run_in_threadpool(store.open, sha256)
    except EvidenceMissing:
        raise ProblemError(404, "The preserved bytes of this media are missing from the evidence store") from None
    await run_in_threadpool(_record_view, engine, principal, ref, media_id)
    return StreamingResponse(reader.iter_chunks(), media_type=content_type or "application/octet-stream",
                             headers={"Cache-Control": "no-store", "Content-Length": str(reader.size)},
                             background=BackgroundTask(reader.close))


def _record_view(engine: Engine, principal: Principal, ref: str, media_id: str) -> None:
    with Session(engine) as session:
        session.add(MediaView(org_id=principal.org_id, api_key_id=principal.api_key_id, role=principal.role.value,
                              workflow_id=ref, media_id=media_id))
        session.commit()
