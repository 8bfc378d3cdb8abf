"""Errors as RFC 9457 problem documents, each naming the fields at fault."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from tipline.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] = []


class ProblemError(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None,
                 errors: list[FieldProblem] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.problem = Problem(status=status, title=title, detail=detail, errors=errors or [])
        self.headers = headers


class BodyTooLarge(HTTPException):
    """A request (or one part of it) over its limit. An HTTPException, so FastAPI passes it through body parsing."""

    def __init__(self, limit: int, setting: str, field: str = "body") -> None:
        super().__init__(413, f"{field} is larger than the limit of {limit} bytes")
        self.limit, self.setting, self.field = limit, setting, field


def too_large(limit: int, setting: str, field: str = "body") -> Problem:
    return Problem(status=413, title="The request is too large",
                   detail=f"{field} may be at most {limit} bytes (setting {setting})",
                   errors=[FieldProblem(field=field, message=f"larger than the limit of {limit} bytes")])


def field_problems(messages: list[str]) -> list[FieldProblem]:
    """Split ``"field: message"`` strings (the workflow's validator words errors so) into problems."""
    problems = []
    for message in messages:
        field, _, text = message.partition(": ")
        problems.append(FieldProblem(field=field, message=text) if text else FieldProblem(field="", message=field))
    return problems


def _response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem.model_dump(exclude_none=True), status_code=problem.status,
                        media_type=PROBLEM_JSON, headers=headers)


def _unavailable(title: str) -> JSONResponse:
    # Retry-After: a client resending with the same Idempotency-Key gets the first answer, never a second effect.
    return _response(Problem(status=503, title=title), {"Retry-After": "1"})


def install(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return _response(exc.problem, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's "error parsing the body": JSON whose bytes are not UTF-8. Malformed JSON, like any other.
            message = f"malformed JSON: not UTF-8 at byte {exc.__cause__.start + 1}"
            return _response(Problem(status=422, title="The request is invalid",
                                     errors=[FieldProblem(field="body", message=message)]))
        return _response(Problem(status=exc.status_code, title=str(exc.detail)), getattr(exc, "headers", None))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return _response(too_large(exc.limit, exc.setting, exc.field))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_field_problem(error, exc.body) for error in exc.errors()]
        return _response(Problem(status=422, title="The request is invalid", errors=errors))

    @app.exception_handler(RPCError)
    async def _temporal(_: Request, exc: RPCError) -> JSONResponse:
        # A workflow id that looks like the caller's own but names nothing: a missing resource, not a fault.
        if exc.status is RPCStatusCode.NOT_FOUND:
            return _response(Problem(status=404, title="Not found"))
        # Temporal's message names the condition (a workflow task failing, a namespace busy); never a payload.
        log.error("temporal.call_failed", status=exc.status.name if exc.status else None, message=exc.message)
        return _unavailable("The workflow service is unavailable; try again")

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # A database that restarts or drops connections is an outage to wait out, not a fault of the request.
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            log.error("database.call_failed", error=type(exc.orig).__name__ if exc.orig is not None else None)
            return _unavailable("The database is unavailable; try again")
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this, so the traceback is still logged; the client learns nothing internal.
        return _response(Problem(status=500, title="Internal error"))


def _field_problem(error: Any, body: Any) -> FieldProblem:
    location = tuple(error["loc"])
    if error.get("type") == "json_invalid" and isinstance(body, str | bytes) and len(location) == 2:
        # FastAPI reports a character offset (``body.34``); people and editors count lines and columns.
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        offset = int(location[1])
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        return FieldProblem(field="body", message=f"malformed JSON at line {line}, column {column}: {reason}")
    return FieldProblem(field=".".join(str(part) for part in location), message=error["msg"])


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}}
    for status in (401, 403, 404, 409, 413, 422)
}
