"""Prometheus metrics: what each process counts as it works, and what the database holds, read at scrape time.

No label ever carries an org, a case, a user or a URL: values are endpoint names, NCMEC's fixed response codes,
case statuses and coarse failure kinds, so the set of series stays small and a scrape leaks no personal data.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from cybertipline.responses import RESPONSE_CODES
from models.case import CaseStatus
from models.records import CaseSummary
from tipline.logging import get_logger
from tipline.settings import parse_address

log = get_logger(__name__)

NCMEC_ANSWERS = Counter(
    "tipline_ncmec_answers", "Answers from NCMEC's CyberTipline API, by endpoint and responseCode "
    "(transport_error: no usable answer; other: a code NCMEC does not document)", ["endpoint", "code"])
CALLBACK_FAILURES = Counter(
    "tipline_callback_failures", "Failed attempts of Tipline's signed calls to a platform, by callback and kind "
    "(unreachable, http_error, refused_answer, invalid_answer)", ["callback", "kind"])
FILING_DURATION = Histogram(
    "tipline_filing_duration_seconds", "From NCMEC accepting a report (/submit) to the report finished (/finish)",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 6 * 3600, 24 * 3600))
EVIDENCE_BYTES = Counter(
    "tipline_evidence_stored_bytes", "Bytes (ciphertext) of new evidence objects this process wrote to the store")
EVIDENCE_OBJECTS = Counter(
    "tipline_evidence_stored_objects", "New evidence objects this process wrote to the store")

NCMEC_ENDPOINTS = frozenset({"status", "xsd", "submit", "upload", "fileinfo", "finish", "retract"})
TRANSPORT_ERROR = "transport_error"


def count_ncmec_answer(path: str, code: int | None) -> None:
    """Count one answer; ``code`` None means no usable answer. Unknown paths and codes fold into ``other``."""
    endpoint = path.rstrip("/").rsplit("/", 1)[-1]
    label = TRANSPORT_ERROR if code is None else str(code) if code in RESPONSE_CODES else "other"
    NCMEC_ANSWERS.labels(endpoint if endpoint in NCMEC_ENDPOINTS else "other", label).inc()


def count_callback_failure(callback: str, kind: str) -> None:
    CALLBACK_FAILURES.labels(callback.replace(" ", "_"), kind).inc()


def count_evidence_stored(size: int) -> None:
    EVIDENCE_BYTES.inc(size)
    EVIDENCE_OBJECTS.inc()


class CaseMetrics(Collector):
    """The review queue as the database has it, computed on each scrape with three aggregate queries."""

    def __init__(self, engine: Engine, statement_timeout_ms: int = 2000) -> None:
        self.engine = engine
        self.statement_timeout_ms = statement_timeout_ms

    def describe(self) -> list[Metric]:
        # Without describe the registry would run the queries once at registration to learn the names.
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        cases, oldest, overdue, up = self._families()
        try:
            counts, oldest_opened, overdue_count = self._query()
        except Exception as error:
            # A scrape while the database is down still answers, saying so, instead of failing as a whole.
            log.warning("metrics.case_query_failed", error=type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        for status in CaseStatus:
            cases.add_metric([status.value], counts.get(status.value, 0))
        now = datetime.now(UTC)
        oldest.add_metric([], (now - oldest_opened).total_seconds() if oldest_opened else 0)
        overdue.add_metric([], overdue_count)
        up.add_metric([], 1)
        yield from (cases, oldest, overdue, up)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("tipline_cases", "Cases by status (every case of every org)", labels=["status"]),
            GaugeMetricFamily("tipline_review_queue_oldest_age_seconds",
                              "How long the oldest case awaiting review has waited since it opened (0: none)"),
            GaugeMetricFamily("tipline_review_deadlines_overdue",
                              "Cases awaiting review past their review deadline"),
            GaugeMetricFamily("tipline_case_metrics_up", "1 if the case gauges could be read from the database"),
        )

    def _query(self) -> tuple[dict[str, int], datetime | None, int]:
        awaiting = CaseSummary.status == CaseStatus.AWAITING_REVIEW.value
        with Session(self.engine) as session:
            if self.engine.dialect.name == "postgresql":
                # A scrape must never hold a connection long; the queries are on indexed columns anyway.
                session.connection().execute(text(f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}"))
            counts = dict(session.exec(select(CaseSummary.status, func.count()).group_by(CaseSummary.status)).all())
            oldest = session.exec(select(func.min(CaseSummary.opened_at)).where(awaiting)).one()
            overdue = session.exec(select(func.count()).where(
                awaiting, col(CaseSummary.review_deadline).is_not(None),
                col(CaseSummary.review_deadline) < datetime.now(UTC))).one()
        if isinstance(oldest, str):  # SQLite's min() hands back the stored text, not the column type
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return {str(k): int(v) for k, v in counts.items()}, oldest, int(overdue)


class _ProcessMetrics(Collector):
    """Everything in the process-wide default registry (the counters above, and Python's own metrics)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def metrics_registry(engine: Engine | None) -> CollectorRegistry:
    """What one endpoint serves: the process's counters, and the case gauges when there is a database."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    if engine is not None:
        registry.register(CaseMetrics(engine))
    return registry


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(address: str, registry: CollectorRegistry, setting: str) -> MetricsServer:
    """Serve ``registry`` on its own listener (port 0 picks a free port; see ``MetricsServer.url``)."""
    try:
        host, port = parse_address(address)
    except ValueError as error:
        raise ValueError(f"{setting}: {error}") from None
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics.serving", address=f"{server.server_address[0]}:{server.server_address[1]}")
    return MetricsServer(server, thread)
