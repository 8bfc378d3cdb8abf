"""fileViewedByEsp says what the view log says when the item was decided, not what the reviewer claims."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.case import ContentItem, EvidenceRef, MediaDecision, MediaItem, MediaSource
from models.cybertip import compose_file_details
from models.filing import FileDetailsInput

EVIDENCE = EvidenceRef(sha256="a" * 64, md5="b" * 32, sha1="c" * 40, size=10)


@pytest.mark.parametrize(("viewed", "sent"), [(True, True), (False, False), (None, True)])
def test_file_viewed_by_esp_follows_the_view_log(viewed: bool | None, sent: bool) -> None:
    content = ContentItem(content_id="m1", org_id="acme", user_id="u", media=MediaSource(evidence=EVIDENCE),
                          received_at=datetime.now(UTC))
    details = compose_file_details(FileDetailsInput(
        org_id="acme", report_id=1, file_id="f1", media=MediaItem(media_id="m1", content=content, evidence=EVIDENCE),
        decision=MediaDecision(media_id="m1", reported=True, viewed=viewed)))
    # None: a decision recorded before views were counted, when every decided item was taken as viewed.
    assert details.file_viewed_by_esp is sent
