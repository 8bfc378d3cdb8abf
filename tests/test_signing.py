"""Signed calls between Tipline and a platform: Standard Webhooks on the way out, answers bound to the call they
answer, each accepted once by any process (the database remembers), and secrets never leak."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, select
from sqlmodel import Session
from standardwebhooks.webhooks import Webhook

from models.records import SeenSignedMessage
from tests.helpers import new_callback_secret
from tipline.db import make_engine, upgrade
from tipline.settings import NcmecCredentials, OrgSettings, ReporterSettings, signing_key
from tipline.signing import (
    ANSWER_ID_HEADER,
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AnswerVerifier,
    DatabaseReplayCache,
    SignatureError,
    SignedRequest,
    answer_id_for,
    sign_answer,
    sign_request,
)

SECRET = new_callback_secret()
KEY = signing_key(SECRET)
OTHER_KEY = signing_key(new_callback_secret())
URL = "https://platform.example/tipline/media-list?v=2"
NOW = float(int(datetime.now(UTC).timestamp()))


def body_for(user: str) -> bytes:
    return json.dumps({"org_id": "globex", "user_id": user, "cursor": None}).encode()


@pytest.fixture
def verifier(engine: Engine) -> AnswerVerifier:
    # A fresh org id per test keeps each test's accepted answers to itself in the shared database.
    return AnswerVerifier(f"org-{uuid.uuid4().hex[:8]}", KEY, DatabaseReplayCache(engine))


def call(user: str = "user-1", **kwargs: object) -> SignedRequest:
    return sign_request(KEY, "POST", URL, body_for(user), now=NOW, **kwargs)  # type: ignore[arg-type]


def answer(request: SignedRequest, body: bytes = b'{"items": []}', key: bytes = KEY, now: float = NOW) -> dict:
    return sign_answer(key, request.answer_id, body, now=now)


def refusal(verifier: AnswerVerifier, request: SignedRequest, headers: dict, body: bytes = b'{"items": []}',
            now: float = NOW) -> str:
    with pytest.raises(SignatureError) as caught:
        verifier.verify(request, headers, body, now=now)
    return caught.value.reason


# --------------------------------------------------------------------------- Tipline's calls, out


def test_a_platform_verifies_tipline_calls_with_the_standard_webhooks_library() -> None:
    body = body_for("user-1")
    request = sign_request(KEY, "POST", URL, body)
    assert Webhook(SECRET).verify(body, request.headers) == json.loads(body)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(SECRET).verify(body.replace(b"user-1", b"user-2"), request.headers)


def test_the_call_signature_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    # Pinned so a platform implementing Standard Webhooks by hand gets the same bytes.
    request = sign_request(KEY, "POST", URL, b'{"a":1}', now=NOW, message_id="msg_0123")
    mac = hmac.new(KEY, f"msg_0123.{int(NOW)}.".encode() + b'{"a":1}', hashlib.sha256).digest()
    assert request.headers[SIGNATURE_HEADER] == "v1," + base64.b64encode(mac).decode()
    assert request.headers[ID_HEADER] == "msg_0123" and request.headers[TIMESTAMP_HEADER] == str(int(NOW))
    assert request.headers[ANSWER_ID_HEADER] == request.answer_id


def test_call_ids_are_random() -> None:
    assert len({sign_request(KEY, "POST", URL, b"{}").headers[ID_HEADER] for _ in range(50)}) == 50


def test_the_answer_id_covers_the_call_id_method_path_and_body() -> None:
    base = answer_id_for("msg_1", "POST", URL, b"{}")
    assert base.startswith("ans_") and len(base) == 36
    assert len({base, answer_id_for("msg_2", "POST", URL, b"{}"), answer_id_for("msg_1", "PUT", URL, b"{}"),
                answer_id_for("msg_1", "POST", URL.replace("media-list", "enrich"), b"{}"),
                answer_id_for("msg_1", "POST", URL.replace("v=2", "v=3"), b"{}"),
                answer_id_for("msg_1", "POST", URL, b"{ }")}) == 6
    # Only the path counts, not how the host is spelled, so a platform computes it from what it received.
    assert answer_id_for("msg_1", "POST", "https://PLATFORM.example:443/tipline/media-list?v=2", b"{}") == base


# ---------------------------------------------------------------------------- the platform's answers


def test_an_answer_signed_by_the_platforms_library_is_accepted(verifier: AnswerVerifier) -> None:
    request = call()
    now = datetime.fromtimestamp(NOW, UTC)
    headers = {"webhook-id": request.answer_id, "webhook-timestamp": str(int(NOW)),
               "webhook-signature": Webhook(SECRET).sign(request.answer_id, now, '{"items": []}')}
    verifier.verify(request, headers, b'{"items": []}', now=NOW)


def test_an_answer_captured_for_another_users_request_is_refused(verifier: AnswerVerifier) -> None:
    for_alice = call("alice")
    captured = answer(for_alice, b'{"items": [{"content_id": "alice-1"}]}')
    for_bob = call("bob")
    assert refusal(verifier, for_bob, captured, b'{"items": [{"content_id": "alice-1"}]}') == \
        "the answer is for another request"
    verifier.verify(for_alice, captured, b'{"items": [{"content_id": "alice-1"}]}', now=NOW)


def test_a_replayed_answer_is_refused(verifier: AnswerVerifier) -> None:
    request = call()
    headers = answer(request)
    verifier.verify(request, headers, b'{"items": []}', now=NOW)
    assert refusal(verifier, request, headers) == "answer already used"


def test_a_replay_after_a_restart_and_from_a_second_process_is_refused(engine: Engine, database_url: str) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    request = call()
    headers = answer(request)
    AnswerVerifier(org, KEY, DatabaseReplayCache(engine)).verify(request, headers, b'{"items": []}', now=NOW)
    # A restarted worker, or another worker process: nothing shared but the database.
    second_engine = make_engine(database_url)
    try:
        restarted = AnswerVerifier(org, KEY, DatabaseReplayCache(second_engine))
        assert refusal(restarted, request, headers) == "answer already used"
    finally:
        second_engine.dispose()


def test_two_processes_racing_on_one_answer_accept_it_once(engine: Engine, database_url: str) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    request = call()
    headers = answer(request)
    engines = [engine, make_engine(database_url)]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def attempt(index: int) -> None:
        start.wait()
        try:
            AnswerVerifier(org, KEY, DatabaseReplayCache(engines[index])).verify(request, headers, b'{"items": []}',
                                                                                now=NOW)
            outcomes.append("accepted")
        except SignatureError as error:
            outcomes.append(error.reason)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engines[1].dispose()
    assert sorted(outcomes) == ["accepted", "answer already used"]


def test_accepted_ids_are_forgotten_once_stale(engine: Engine, verifier: AnswerVerifier) -> None:
    old = call()
    verifier.verify(old, answer(old), b'{"items": []}', now=NOW)
    later = NOW + 301
    new = sign_request(KEY, "POST", URL, b"{}", now=later)
    verifier.verify(new, answer(new, now=later), b'{"items": []}', now=later)
    with Session(engine) as session:
        ids = set(session.scalars(select(SeenSignedMessage.message_id)))
        stale = session.scalar(select(func.count()).select_from(SeenSignedMessage).where(
            SeenSignedMessage.expires_at < datetime.fromtimestamp(later, UTC)))  # type: ignore[arg-type]
    assert old.answer_id not in ids and new.answer_id in ids and stale == 0
    assert refusal(verifier, old, answer(old), now=later) == "timestamp too old"  # forgotten, yet still refused


def test_a_forged_answer_is_refused_and_burns_nothing(verifier: AnswerVerifier) -> None:
    request = call()
    assert refusal(verifier, request, answer(request, key=OTHER_KEY)) == "signature mismatch"
    headers = answer(request)
    assert refusal(verifier, request, headers, body=b'{"items": [1]}') == "signature mismatch"
    assert refusal(verifier, request, {**headers, TIMESTAMP_HEADER: str(int(NOW) + 1)}) == "signature mismatch"
    verifier.verify(request, headers, b'{"items": []}', now=NOW)  # the genuine answer still counts


def test_stale_and_future_answers_are_refused(verifier: AnswerVerifier) -> None:
    request = call()
    assert refusal(verifier, request, answer(request, now=NOW - 301)) == "timestamp too old"
    assert refusal(verifier, request, answer(request, now=NOW + 301)) == "timestamp in the future"


@pytest.mark.parametrize("missing", [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER])
def test_missing_headers_are_refused(verifier: AnswerVerifier, missing: str) -> None:
    request = call()
    headers = {k: v for k, v in answer(request).items() if k != missing}
    assert refusal(verifier, request, headers) == f"missing {missing} header"


@pytest.mark.parametrize(("header", "value"), [(ID_HEADER, "msg_123"), (TIMESTAMP_HEADER, "-5"),
                                               (TIMESTAMP_HEADER, "1e9")])
def test_malformed_headers_are_refused(verifier: AnswerVerifier, header: str, value: str) -> None:
    request = call()
    assert refusal(verifier, request, {**answer(request), header: value}) == f"malformed {header}"


def test_header_names_are_case_insensitive(verifier: AnswerVerifier) -> None:
    request = call()
    verifier.verify(request, {k.upper(): v for k, v in answer(request).items()}, b'{"items": []}', now=NOW)


def test_a_body_that_is_not_utf8_is_refused(verifier: AnswerVerifier) -> None:
    request = call()
    assert refusal(verifier, request, {**answer(request)}, body=b"\xff\xfe") == "the body is not UTF-8"


def test_secrets_never_appear_in_errors_or_reprs(verifier: AnswerVerifier) -> None:
    request = call()
    reason = refusal(verifier, request, answer(request, key=OTHER_KEY))
    org = org_with(callback_secret=SECRET)
    text = reason + repr(verifier) + repr(org) + org.model_dump_json()
    assert SECRET not in text and KEY.hex() not in text and base64.b64encode(KEY).decode() not in text


# ------------------------------------------------------------------------------------ configuration


def org_with(**fields: object) -> OrgSettings:
    return OrgSettings.model_validate({
        "id": "acme", "name": "Acme", "ncmec": NcmecCredentials(username="u", password="p"),
        "reporter": ReporterSettings(email="safety@acme.example.com"), **fields})


@pytest.mark.parametrize("field", ["escalation_webhook_url", "enrichment_url", "media_list_url"])
def test_a_callback_url_without_a_secret_is_refused_at_configuration(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        org_with(**{field: "https://platform.example/hook"})
    assert f"{field} is set but callback_secret is not" in str(caught.value)
    org_with(**{field: "https://platform.example/hook", "callback_secret": SECRET})  # with one it is taken


@pytest.mark.parametrize("secret", ["not base64!", "whsec_" + base64.b64encode(b"short").decode(), ""])
def test_a_weak_or_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="callback_secret"):
        org_with(callback_secret=secret)


@pytest.mark.parametrize("url", ["ftp://platform.example/x", "platform.example/hook", "https://"])
def test_a_callback_url_must_be_http_or_https(url: str) -> None:
    with pytest.raises(ValidationError, match="escalation_webhook_url"):
        org_with(escalation_webhook_url=url, callback_secret=SECRET)


def test_the_embedded_sqlite_database_remembers_answers_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'tipline.db'}"
    upgrade(url)
    request = call()
    headers = answer(request)
    first, second = make_engine(url), make_engine(url)
    try:
        AnswerVerifier("acme", KEY, DatabaseReplayCache(first)).verify(request, headers, b'{"items": []}', now=NOW)
        assert refusal(AnswerVerifier("acme", KEY, DatabaseReplayCache(second)), request, headers) == \
            "answer already used"
    finally:
        first.dispose()
        second.dispose()
