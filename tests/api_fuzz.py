"""Schemathesis against Tipline's own OpenAPI document, over real HTTP on loopback.

Every operation gets generated requests, valid ones and deliberately invalid ones, sent with each given API key.
Each answer is checked: no 5xx, the body matches the documented schema for its status, the status and the
content type are documented. Used by ``benchmarks/fuzz_api.py`` (the full run) and a fast test.

Run it only against an API whose task queue no worker polls: generated ``media_url``s must never be fetched.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = {
    "server_errors": not_a_server_error,
    "schema_violations": response_schema_conformance,
    "undocumented_statuses": status_code_conformance,
    "undocumented_content_types": content_type_conformance,
}


@dataclass
class FuzzReport:
    requests: int = 0
    operations: int = 0
    seconds: float = 0.0
    out_of_time: bool = False
    failures: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in CHECKS})
    # "GET /v1/cases" -> status -> how often it was answered
    statuses: dict[str, Counter[int]] = field(default_factory=dict)

    def count(self, name: str) -> int:
        return len(self.failures[name])

    @property
    def clean(self) -> bool:
        return not any(self.failures.values())

    def summary(self) -> str:
        lines = [
            f"{self.requests} requests over {self.operations} operations in {self.seconds:.1f} s"
            + (" (stopped at the time limit)" if self.out_of_time else ""),
            f"server errors (5xx): {self.count('server_errors')}",
            f"response-schema violations: {self.count('schema_violations')}",
            f"undocumented status codes: {self.count('undocumented_statuses')}",
            f"undocumented content types: {self.count('undocumented_content_types')}",
            "every status code answered is documented: "
            + ("yes" if not self.failures["undocumented_statuses"] else "no"),
        ]
        for name, messages in self.failures.items():
            lines += [f"  {name}: {message}" for message in sorted(set(messages))[:20]]
        return "\n".join(lines)


def fuzz_api(base_url: str, keys: Mapping[str, str], *, max_examples: int, time_limit: float,
             operations: tuple[str, ...] | None = None) -> FuzzReport:
    """Fuzz every operation (or those whose path starts with one of ``operations``) with each key in ``keys``."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = FuzzReport()
    started = time.monotonic()
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operations is not None and not operation.path.startswith(operations):
            continue
        report.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, base_url, keys, session, report, max_examples=max_examples,
                            deadline=started + time_limit)
    report.seconds = time.monotonic() - started
    return report


def _fuzz_operation(operation: APIOperation, mode: GenerationMode, base_url: str, keys: Mapping[str, str],
                    session: requests.Session, report: FuzzReport, *, max_examples: int, deadline: float) -> None:
    statuses = report.statuses.setdefault(operation.label, Counter())

    @hypothesis.settings(max_examples=max_examples, database=None, deadline=None, derandomize=True,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @hypothesis.given(operation.as_strategy(generation_mode=mode))
    def exercise(case: schemathesis.Case) -> None:
        if time.monotonic() > deadline:
            report.out_of_time = True
            return
        for role, key in keys.items():
            try:
                # The key replaces whatever was generated for the header: each request goes as this role.
                case.headers = {**(case.headers or {}), "X-API-Key": key}
                response = case.call(base_url=base_url, session=session, timeout=30)
            except (requests.exceptions.InvalidHeader, ValueError, UnicodeError):
                continue  # a negative case no HTTP client can send (a header with a newline, say)
            report.requests += 1
            statuses[response.status_code] += 1
            for name, check in CHECKS.items():
                try:
                    case.validate_response(response, checks=[check])
                except (FailureGroup, Failure) as error:
                    failures = error.exceptions if isinstance(error, FailureGroup) else (error,)
                    report.failures[name] += [
                        f"{operation.label} as {role}: {response.status_code} {failure.title}: "
                        f"{failure.message.splitlines()[0] if failure.message else ''}"[:300]
                        for failure in failures
                    ]

    # Unsatisfiable: no invalid request exists for it (an operation without parameters or body).
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        exercise()
