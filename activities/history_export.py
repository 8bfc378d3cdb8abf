"""Exporting a closed case's histories (tipline.history_export): a thin adapter the case workflow calls at close."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity

from models.history_export_messages import ExportedHistory, ExportHistoryInput

if TYPE_CHECKING:
    from tipline.history_export import HistoryExporter


class HistoryExportActivities:
    def __init__(self, exporter: HistoryExporter) -> None:
        self.exporter = exporter

    @activity.defn
    async def export_case_history(self, request: ExportHistoryInput) -> ExportedHistory:
        return await self.exporter.export(request)
