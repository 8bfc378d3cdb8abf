"""Errors as RFC 9457 problem documents, each naming the fields at fault."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


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


def install(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return _response(exc.problem, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _response(Problem(status=exc.status_code, title=str(exc.detail)), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldProblem(field=".".join(str(p) for p in error["loc"]), message=error["msg"])
                  for error in exc.errors()]
        return _response(Problem(status=422, title="The request is invalid", errors=errors))


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}}
    for status in (401, 403, 404, 409, 422)
}
