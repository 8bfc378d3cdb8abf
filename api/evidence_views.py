"""Showing a person preserved media: decrypt as a stream, and record who looked at what, when."""

from __future__ import annotations

from typing import Any

from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.deps import Principal
from api.problems import ProblemError
from models.records import MediaView
from tipline.audit_log import AuditLog
from tipline.evidence import EvidenceMissing, EvidenceStore
from tipline.media_types import EXTENSIONS, SNIFF_BYTES, sniff_media_type

# Media is shown only as an image or video the review page fetches; as a document it could do nothing at all.
MEDIA_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"


async def evidence_response(store: EvidenceStore, engine: Engine, audit: AuditLog, principal: Principal, *,
                            sha256: str, ref: str, media_id: str) -> StreamingResponse:
    """The preserved bytes as a download, typed by what they are (the platform's Content-Type is never used)."""
    try:
        # Opening authenticates the header and the last chunk: a missing or damaged object fails before headers.
        reader = await run_in_threadpool(store.open, sha256)
    except EvidenceMissing:
        raise ProblemError(404, "The preserved bytes of this media are missing from the evidence store") from None
    try:
        media_type = sniff_media_type(await run_in_threadpool(reader.read, SNIFF_BYTES))
        reader.seek(0)
        await run_in_threadpool(_record_view, engine, principal, ref, media_id)
        await run_in_threadpool(lambda: audit.append("media.viewed", actor=principal.actor, org_id=principal.org_id,
                                                     subject=ref, media_id=media_id))
    except BaseException:
        reader.close()
        raise
    # The name is ours: the platform's file name could carry anything into a header or a save dialog.
    file_name = f"media-{sha256[:16]}.{EXTENSIONS[media_type]}"
    return StreamingResponse(reader.iter_chunks(), media_type=media_type,
                             headers={"Cache-Control": "no-store", "Content-Length": str(reader.size),
                                      "Content-Disposition": f'attachment; filename="{file_name}"',
                                      "Content-Security-Policy": MEDIA_CSP},
                             background=BackgroundTask(reader.close))


def _record_view(engine: Engine, principal: Principal, ref: str, media_id: str) -> None:
    with Session(engine) as session:
        session.add(MediaView(org_id=principal.org_id, api_key_id=principal.api_key_id,
                              user_id=principal.user_id, role=principal.role.value,
                              workflow_id=ref, media_id=media_id))
        session.commit()


def viewed_media(engine: Engine, org_id: str, ref: str) -> set[str]:
    """The media ids of case ``ref`` a person (or key) of the org has viewed, by the view log."""
    with Session(engine) as session:
        rows = session.exec(select(MediaView.media_id).where(MediaView.org_id == org_id,
                                                             MediaView.workflow_id == ref).distinct())
        return set(rows.all())


def viewed_by(engine: Engine, principal: Principal, ref: str) -> set[str]:
    """The media ids of case ``ref`` this caller itself has viewed: the person's own reveals, or the key's fetches."""
    who = (MediaView.user_id == principal.user_id if principal.user_id is not None
           else MediaView.api_key_id == principal.api_key_id)
    with Session(engine) as session:
        rows = session.exec(select(MediaView.media_id).where(MediaView.org_id == principal.org_id,
                                                             MediaView.workflow_id == ref, who).distinct())
        return set(rows.all())


MEDIA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The media bytes as a download, typed by what they are",
          "content": {media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in EXTENSIONS}},
}
