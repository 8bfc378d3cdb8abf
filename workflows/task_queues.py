"""Which task queue each activity runs on (README, "Task queues").

Every name derives from the queue the workflow itself runs on, so a deployment (or a test) that picks its own
``task_queue`` gets its own set. Routing changes only the queue of a scheduled activity, not the commands a
workflow issues, so recorded histories keep replaying.

The case queue keeps the workflows, their local activities and the quick database writes (triage rows).
"""

from __future__ import annotations

from temporalio import workflow

CASES = "cases"
DETECTION = "detection"
NCMEC = "ncmec"
PLATFORM = "platform"
ROLES = (CASES, DETECTION, NCMEC, PLATFORM)


def queue_name(base: str, role: str, org_id: str | None = None) -> str:
    """The queue for ``role`` beside the case queue ``base``; NCMEC calls have one queue per org."""
    if role == CASES:
        return base
    if role == NCMEC:
        if org_id is None:
            raise ValueError("the NCMEC queue is per org: org_id is required")
        return f"{base}-ncmec-{org_id}"
    return f"{base}-{role}"


def detection() -> str:
    """Hashing, bank matching and classifying: CPU-bound, on workers sized for it."""
    return queue_name(workflow.info().task_queue, DETECTION)


def ncmec(org_id: str) -> str:
    """Calls to NCMEC for one org: a rate limit per queue is a rate limit per org."""
    return queue_name(workflow.info().task_queue, NCMEC, org_id)


def platform() -> str:
    """Calls to the platform: media fetches, enrichment, media lists, escalation webhooks."""
    return queue_name(workflow.info().task_queue, PLATFORM)
