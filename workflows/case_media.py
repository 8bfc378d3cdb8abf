"""Gathering a case's media: the user's history and media at the platform, preservation, hashing and matching.

A mixin of ``CaseWorkflow``: it reads and changes the case's state; the workflow decides when each runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.case_index import CaseIndexActivities
    from activities.detection import DetectionActivities
    from activities.media import MediaActivities
    from activities.platform_callbacks import PlatformCallbackActivities
    from models.case import CaseState, ContentItem, EnqueueReason, FilingPolicy, MediaAnalysis, MediaItem, MediaSource
    from models.filing import (
        AnalyzeMediaBatch,
        AnalyzeMediaInput,
        ListUserMediaInput,
        PreserveMediaBatch,
        PreserveMediaInput,
        UserMediaPage,
    )
    from workflows import task_queues
    from workflows.case_decided import failure_due, open_failure, resolve_failure
    from workflows.errors import reviewer_safe_reason

LOCAL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
PRESERVE_BATCH = 8
# Items per batch activity: a few history events per batch instead of several per item.
MEDIA_BATCH = 64
MAX_MEDIA_PAGES = 1000
# An analysis that failed its attempts is tried again later instead of calling the items unhashable (older
# histories replay the old way).
ANALYSIS_RETRIED_LATER_PATCH = "media-analysis-retried-later"
# The retry is due when a timer of its own fires, not when the clock passes the failure's retry_at: a worker that
# took a case over cold was seen to time a failure by an earlier task's clock, where replay used the task's own,
# so the run retried the analysis and its replay did not (chaos seed 23, twice). A timer's firing is an event in
# the history, the same in both.
ANALYSIS_RETRY_TIMER_PATCH = "media-analysis-retried-on-a-timer"


class CaseMediaSteps:
    state: CaseState
    policy: FilingPolicy
    _changed: bool
    _awaiting_preservation: list[str]
    _awaiting_analysis: list[str]
    # Analysed again once the case's media_analysis failure is due: its retry timer fired (older runs: its retry_at).
    _analysis_to_retry: list[str]
    _analysis_retry_timer: asyncio.Task[None] | None
    _analysis_retry_fired: bool
    _analysis_retry_on_timer: bool
    # DecidedCaseSteps._record_failure (annotated only, so the workflow class finds that one).
    _record_failure: Callable[..., None]
    listing_media: bool
    media_cursor: str | None
    media_pages: int

    def add_content(self, item: ContentItem) -> None:
        raise NotImplementedError

    async def _list_user_media(self) -> None:
        """Add every media item the platform has ever associated with the user; what it cannot deliver is
        recorded (a page that fails, an item whose download fails) rather than failing the case."""
        cursor: str | None = None
        for _ in range(MAX_MEDIA_PAGES):
            try:
                page = await workflow.execute_activity_method(
                    PlatformCallbackActivities.list_user_media,
                    ListUserMediaInput(org_id=self.state.org_id, case_ref=self.state.workflow_id,
                                       user_id=self.state.user_id, cursor=cursor),
                    start_to_close_timeout=self.policy.call_timeout,
                    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
                    task_queue=task_queues.platform(),
                )
            except ActivityError as error:
                self.state.media_list_error = reviewer_safe_reason(error)
                self._changed = True
                return
            self._add_listed_media(page)
            if page.next_cursor is None:
                self.state.media_listed = True
                return
            cursor = page.next_cursor
        self.state.media_list_error = f"the platform's media list went on past {MAX_MEDIA_PAGES} pages"

    async def _list_media_page(self) -> None:
        """One page of the platform's media list; the cursor is kept, so the list can be gathered across
        continue-as-new. What it cannot deliver is recorded rather than failing the case."""
        try:
            page = await workflow.execute_activity_method(
                PlatformCallbackActivities.list_user_media,
                ListUserMediaInput(org_id=self.state.org_id, case_ref=self.state.workflow_id,
                                   user_id=self.state.user_id, cursor=self.media_cursor),
                start_to_close_timeout=self.policy.call_timeout,
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
                task_queue=task_queues.platform(),
            )
        except ActivityError as error:
            self.state.media_list_error = reviewer_safe_reason(error)
            self.listing_media = False
            self._changed = True
            return
        self._add_listed_media(page)
        self.media_pages += 1
        self.media_cursor = page.next_cursor
        if page.next_cursor is None:
            self.state.media_listed = True
            self.listing_media = False
        elif self.media_pages >= MAX_MEDIA_PAGES:
            self.state.media_list_error = f"the platform's media list went on past {MAX_MEDIA_PAGES} pages"
            self.listing_media = False
        self._changed = True

    def _add_listed_media(self, page: UserMediaPage) -> None:
        """Each item of a page of the platform's media list joins the case, as media Tipline fetches by URL."""
        for entry in page.items:
            self.add_content(ContentItem(
                content_id=entry.content_id, org_id=self.state.org_id, user_id=self.state.user_id,
                media=MediaSource(url=entry.media_url), file_name=entry.file_name, content_type=entry.content_type,
                uploaded_at=entry.uploaded_at, received_at=workflow.now(),
                reason=EnqueueReason(kind="associated_media", at=workflow.now()),
            ))

    async def _continue_user_history(self) -> None:
        """A fresh run for a user filed before is their next case, naming the earlier CyberTips."""
        history = await workflow.execute_local_activity_method(
            CaseIndexActivities.user_history, self.state.workflow_id,
            start_to_close_timeout=timedelta(seconds=30), retry_policy=LOCAL_RETRY,
        )
        self.state.case_number = history.case_number
        self.state.prior_report_ids = history.prior_report_ids

    async def _preserve_media(self) -> None:
        batch, self._awaiting_preservation = (self._awaiting_preservation[:PRESERVE_BATCH],
                                              self._awaiting_preservation[PRESERVE_BATCH:])
        items = [item for item in map(self.state.media_item, batch) if item is not None]
        results = await asyncio.gather(*(
            workflow.execute_activity_method(
                MediaActivities.preserve_media,
                PreserveMediaInput(org_id=self.state.org_id, workflow_id=self.state.workflow_id,
                                   media_id=item.media_id, source=item.content.media),
                start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5),
                task_queue=task_queues.platform(),
            )
            for item in items
        ), return_exceptions=True)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, ActivityError):
                # The case keeps the item, with the reason, rather than failing on one bad link.
                item.preservation_error = reviewer_safe_reason(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                item.evidence = result.evidence
                item.preservation_error = result.error
                if item.evidence is not None and item.analysis is None:
                    self._awaiting_analysis.append(item.media_id)
        self._changed = True

    async def _analyze_media(self) -> None:
        """Hash each preserved item and look it up in the org's banks; a match is one more reason it is here."""
        batch = self._awaiting_analysis[:PRESERVE_BATCH]
        self._awaiting_analysis = self._awaiting_analysis[PRESERVE_BATCH:]
        items = [item for item in map(self.state.media_item, batch) if item is not None and item.evidence is not None]
        results = await asyncio.gather(*(
            workflow.execute_activity_method(
                DetectionActivities.analyze_media,
                AnalyzeMediaInput(org_id=self.state.org_id, evidence=item.evidence),
                start_to_close_timeout=timedelta(minutes=1), retry_policy=RetryPolicy(maximum_attempts=5),
                task_queue=task_queues.detection(),
            )
            for item in items if item.evidence is not None
        ), return_exceptions=True)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, ActivityError):
                item.analysis = MediaAnalysis(unhashable_reason=reviewer_safe_reason(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                item.analysis = result
                for match in result.matches:
                    self._add_reason(item, EnqueueReason(
                        kind="hash_match", at=workflow.now(),
                        detail=f"bank {match.bank_name}: {match.hash_type} distance {match.distance}"))
        self._changed = True

    async def _preserve_media_batch(self) -> None:
        """Preserve the next items in one activity; an item the platform cannot deliver keeps its reason."""
        batch, self._awaiting_preservation = (self._awaiting_preservation[:MEDIA_BATCH],
                                              self._awaiting_preservation[MEDIA_BATCH:])
        items = [item for item in map(self._media, batch) if item is not None]
        try:
            results = await workflow.execute_activity_method(
                MediaActivities.preserve_media_batch,
                PreserveMediaBatch(items=[PreserveMediaInput(org_id=self.state.org_id,
                                                             workflow_id=self.state.workflow_id,
                                                             media_id=item.media_id, source=item.content.media)
                                          for item in items]),
                start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5),
                task_queue=task_queues.platform(),
            )
        except ActivityError as error:
            for item in items:
                item.preservation_error = reviewer_safe_reason(error)
            self._changed = True
            return
        for item, result in zip(items, results, strict=True):
            item.evidence = result.evidence
            item.preservation_error = result.error
            if item.evidence is not None and item.analysis is None:
                self._awaiting_analysis.append(item.media_id)
        self._changed = True

    async def _analyze_media_batch(self) -> None:
        """Hash the next preserved items and look them up in the org's banks, in one activity."""
        batch, self._awaiting_analysis = self._awaiting_analysis[:MEDIA_BATCH], self._awaiting_analysis[MEDIA_BATCH:]
        items = [item for item in map(self._media, batch) if item is not None and item.evidence is not None]
        try:
            results = await workflow.execute_activity_method(
                DetectionActivities.analyze_media_batch,
                AnalyzeMediaBatch(org_id=self.state.org_id,
                                  items=[item.evidence for item in items if item.evidence is not None]),
                # The activity heartbeats every few seconds (per item, while the banks load, while a long item is
                # hashed): a dead worker costs 15 s, not the whole timeout. (Activity options do not affect replay.)
                start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(seconds=15),
                retry_policy=RetryPolicy(maximum_attempts=5),
                task_queue=task_queues.detection(),
            )
        except ActivityError as error:
            if workflow.patched(ANALYSIS_RETRIED_LATER_PATCH):
                self._analysis_failed(items, error)
                return
            results = [MediaAnalysis(unhashable_reason=reviewer_safe_reason(error)) for _ in items]
        if not self._analysis_to_retry:
            resolve_failure(self.state, "media_analysis")
        for item, result in zip(items, results, strict=True):
            item.analysis = result
            for match in result.matches:
                self._add_reason(item, EnqueueReason(
                    kind="hash_match", at=workflow.now(),
                    detail=f"bank {match.bank_name}: {match.hash_type} distance {match.distance}"))
        self._changed = True

    def _analysis_failed(self, items: list[MediaItem], error: ActivityError) -> None:
        """Every attempt failed: that says the database, the store or the workers are failing, not the items. They
        wait, shown as being hashed, with the failure on the case for operators, and are analysed again; they
        are called unhashable only once the case's retries are spent."""
        self._record_failure(self.state, "media_analysis", error, self.policy.analysis_retry_every)
        failure = open_failure(self.state, "media_analysis")
        if failure is not None and failure.retry_at is None:
            for item in items:
                item.analysis = MediaAnalysis(unhashable_reason=failure.reason)
        else:
            self._analysis_to_retry.extend(item.media_id for item in items)
            if not self._analysis_retry_on_timer:
                self._analysis_retry_on_timer = workflow.patched(ANALYSIS_RETRY_TIMER_PATCH)
            if self._analysis_retry_on_timer and self._analysis_retry_timer is None:
                self._analysis_retry_timer = asyncio.create_task(
                    self._analysis_retry_after(self.policy.analysis_retry_every))
        self._changed = True

    async def _analysis_retry_after(self, delay: timedelta) -> None:
        await workflow.sleep(delay)
        self._analysis_retry_timer = None
        self._analysis_retry_fired = True

    def _retry_analysis_when_due(self, now: datetime) -> None:
        if not self._analysis_to_retry:
            self._analysis_retry_fired = False  # a timer for items that moved on to the next case
            if not self._awaiting_analysis:
                # Nothing of this case waits for it any more (moved to the next case, or continued as new).
                resolve_failure(self.state, "media_analysis")
            return
        if self._analysis_retry_on_timer:
            # Due when its timer fired, or at once when the case holding the failure moved on (the next case's).
            due = self._analysis_retry_fired or open_failure(self.state, "media_analysis") is None
        else:
            due = failure_due(self.state, "media_analysis", now)
        if due:
            self._analysis_retry_fired = False
            self._awaiting_analysis.extend(self._analysis_to_retry)
            self._analysis_to_retry = []

    def _media(self, media_id: str) -> MediaItem | None:
        return self.state.media_item(media_id)

    @staticmethod
    def _add_reason(item: MediaItem, reason: EnqueueReason) -> bool:
        if any(r.kind == reason.kind and r.detail == reason.detail and r.by == reason.by for r in item.reasons):
            return False
        item.reasons.append(reason)
        return True
