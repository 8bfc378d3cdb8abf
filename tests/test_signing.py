"""Signed callbacks between Tipline and a platform: authentic, fresh, single-use, and secrets never leak."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from tipline.signing import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InMemoryReplayCache,
    SignatureError,
    SignatureVerifier,
    SignedRequestAuth,
    sign,
)

SECRET = b"synthetic-shared-secret-0123456789abcdef"
OTHER_SECRET = b"another-synthetic-secret-fedcba9876543210"
NOW = 1_767_225_600.0
BODY = json.dumps({"user_id": "user-123", "cursor": None}).encode()


def verifier(**kwargs: object) -> SignatureVerifier:
    return SignatureVerifier(SECRET, **kwargs)  # type: ignore[arg-type]


def refusal(verify: SignatureVerifier, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> str:
    with pytest.raises(SignatureError) as caught:
        verify.verify(headers, body, now=now)
    return caught.value.reason


def test_round_trip() -> None:
    headers = sign(SECRET, BODY, now=NOW)
    assert set(headers) == {TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER}
    assert headers[TIMESTAMP_HEADER] == "1767225600"
    assert len(headers[NONCE_HEADER]) == 32 and int(headers[NONCE_HEADER], 16) >= 0
    verifier().verify(headers, BODY, now=NOW)


def test_signature_is_hmac_sha256_of_timestamp_nonce_and_body() -> None:
    # Pinned so a platform implementing the scheme from the docs gets the same bytes.
    nonce = "00112233445566778899aabbccddeeff"
    headers = sign(SECRET, b'{"a":1}', now=NOW, nonce=nonce)
    expected = hmac.new(SECRET, b'1767225600.' + nonce.encode() + b'.{"a":1}', hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == "v1=" + expected


def test_nonces_are_random() -> None:
    assert len({sign(SECRET, BODY, now=NOW)[NONCE_HEADER] for _ in range(50)}) == 50


def test_empty_body_round_trip() -> None:
    verifier().verify(sign(SECRET, b"", now=NOW), b"", now=NOW)


def test_forged_body_is_refused() -> None:
    headers = sign(SECRET, BODY, now=NOW)
    assert refusal(verifier(), headers, body=BODY.replace(b"user-123", b"user-124")) == "signature mismatch"


def test_wrong_secret_is_refused() -> None:
    assert refusal(verifier(), sign(OTHER_SECRET, BODY, now=NOW)) == "signature mismatch"


def test_tampered_timestamp_or_nonce_is_refused() -> None:
    headers = sign(SECRET, BODY, now=NOW)
    assert refusal(verifier(), {**headers, TIMESTAMP_HEADER: str(int(NOW) + 1)}) == "signature mismatch"
    assert refusal(verifier(), {**headers, NONCE_HEADER: "f" * 32}) == "signature mismatch"


def test_stale_timestamp_is_refused() -> None:
    headers = sign(SECRET, BODY, now=NOW - 301)
    assert refusal(verifier(), headers) == "timestamp too old"
    verifier().verify(sign(SECRET, BODY, now=NOW - 300), BODY, now=NOW)  # the window's edge is inside


def test_future_timestamp_is_refused() -> None:
    assert refusal(verifier(), sign(SECRET, BODY, now=NOW + 301)) == "timestamp in the future"
    verifier().verify(sign(SECRET, BODY, now=NOW + 300), BODY, now=NOW)  # clock skew within the window


def test_custom_window() -> None:
    assert refusal(verifier(max_age_seconds=10), sign(SECRET, BODY, now=NOW - 11)) == "timestamp too old"


def test_replay_is_refused() -> None:
    verify = verifier()
    headers = sign(SECRET, BODY, now=NOW)
    verify.verify(headers, BODY, now=NOW)
    assert refusal(verify, headers, now=NOW + 1) == "nonce already used"


def test_replay_cache_is_shared_between_verifiers() -> None:
    cache = InMemoryReplayCache()
    headers = sign(SECRET, BODY, now=NOW)
    SignatureVerifier(SECRET, replay_cache=cache).verify(headers, BODY, now=NOW)
    assert refusal(SignatureVerifier(SECRET, replay_cache=cache), headers) == "nonce already used"


def test_forged_messages_do_not_burn_nonces() -> None:
    verify = verifier()
    headers = sign(SECRET, BODY, now=NOW)
    refusal(verify, headers, body=b"forged")
    verify.verify(headers, BODY, now=NOW)  # the genuine message still goes through once


def test_replay_cache_forgets_nonces_once_they_would_be_stale() -> None:
    cache = InMemoryReplayCache()
    verify = SignatureVerifier(SECRET, max_age_seconds=60, replay_cache=cache)
    for second in range(100):
        verify.verify(sign(SECRET, BODY, now=NOW + second), BODY, now=NOW + second)
    # Only messages still inside the window are remembered: memory is bounded by the window.
    assert len(cache) <= 61
    late = NOW + 1000
    verify.verify(sign(SECRET, BODY, now=late), BODY, now=late)
    assert len(cache) == 1


def test_a_forgotten_nonce_cannot_be_replayed_because_it_is_stale() -> None:
    verify = verifier(max_age_seconds=60)
    headers = sign(SECRET, BODY, now=NOW)
    verify.verify(headers, BODY, now=NOW)
    verify.verify(sign(SECRET, BODY, now=NOW + 200), BODY, now=NOW + 200)  # prunes the first nonce
    assert refusal(verify, headers, now=NOW + 200) == "timestamp too old"


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER])
def test_missing_header_is_refused(missing: str) -> None:
    headers = sign(SECRET, BODY, now=NOW)
    del headers[missing]
    assert refusal(verifier(), headers) == f"missing {missing} header"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (TIMESTAMP_HEADER, "soon"),
        (TIMESTAMP_HEADER, "-1"),
        (NONCE_HEADER, "short"),
        (NONCE_HEADER, "G" * 32),
        (SIGNATURE_HEADER, "v0=" + "0" * 64),
        (SIGNATURE_HEADER, "0" * 64),
        (SIGNATURE_HEADER, "v1=abc"),
    ],
)
def test_malformed_headers_are_refused(header: str, value: str) -> None:
    headers = sign(SECRET, BODY, now=NOW)
    assert refusal(verifier(), {**headers, header: value}) == f"malformed {header}"


def test_header_names_are_case_insensitive() -> None:
    headers = {name.lower(): value for name, value in sign(SECRET, BODY, now=NOW).items()}
    verifier().verify(headers, BODY, now=NOW)
    verifier().verify(httpx.Headers(sign(SECRET, BODY, now=NOW)), BODY, now=NOW)


def test_secrets_never_appear_in_errors_or_reprs() -> None:
    verify = verifier()
    auth = SignedRequestAuth(SECRET, response_verifier=verify)
    texts = [repr(verify), str(verify), repr(auth), str(auth)]
    headers = sign(OTHER_SECRET, BODY, now=NOW)
    for bad in (headers, sign(SECRET, BODY, now=0), {}):
        with pytest.raises(SignatureError) as caught:
            verify.verify(bad, BODY, now=NOW)
        texts += [str(caught.value), repr(caught.value), caught.value.reason]
    for secret in (SECRET, OTHER_SECRET):
        for form in (secret.decode(), secret.hex(), repr(secret)):
            assert not any(form in text for text in texts)


def test_bad_construction_is_refused() -> None:
    for build in (lambda: SignatureVerifier(b""), lambda: SignedRequestAuth(b""), lambda: sign(b"", BODY)):
        with pytest.raises(ValueError):
            build()
    with pytest.raises(ValueError):
        SignatureVerifier(SECRET, max_age_seconds=0)
    with pytest.raises(ValueError):
        sign(SECRET, BODY, nonce="not hex")


# -------------------------------------------------------------------------------------------- httpx


def platform(secret: bytes, *, sign_answers: bool = True) -> httpx.MockTransport:
    """A platform endpoint that verifies Tipline's call and signs its answer."""
    verify = SignatureVerifier(secret)

    def handle(request: httpx.Request) -> httpx.Response:
        try:
            verify.verify(request.headers, request.content)
        except SignatureError as exc:
            return httpx.Response(401, json={"error": exc.reason})
        answer = json.dumps({"media": ["m-1", "m-2"], "echo": json.loads(request.content or b"null")}).encode()
        headers = sign(secret, answer) if sign_answers else {}
        return httpx.Response(200, content=answer, headers=headers)

    return httpx.MockTransport(handle)


def test_httpx_client_signs_requests_and_verifies_answers() -> None:
    auth = SignedRequestAuth(SECRET, response_verifier=SignatureVerifier(SECRET))
    with httpx.Client(transport=platform(SECRET), auth=auth, base_url="https://platform.example.com") as client:
        response = client.post("/tipline/media", json={"user_id": "user-123"})
        assert response.status_code == 200
        assert response.json()["echo"] == {"user_id": "user-123"}
        assert client.get("/tipline/media?page=2").status_code == 200  # empty body, still signed


def test_platform_refuses_a_call_signed_with_another_secret() -> None:
    with httpx.Client(transport=platform(SECRET), auth=SignedRequestAuth(OTHER_SECRET)) as client:
        response = client.post("https://platform.example.com/tipline/media", json={"user_id": "user-123"})
    assert response.status_code == 401
    assert response.json() == {"error": "signature mismatch"}


def test_unsigned_answer_is_refused() -> None:
    auth = SignedRequestAuth(SECRET, response_verifier=SignatureVerifier(SECRET))
    with (
        httpx.Client(transport=platform(SECRET, sign_answers=False), auth=auth) as client,
        pytest.raises(SignatureError, match="missing X-Tipline-Timestamp header"),
    ):
        client.post("https://platform.example.com/tipline/media", json={"user_id": "user-123"})


async def test_async_client_signs_requests_too() -> None:
    auth = SignedRequestAuth(SECRET, response_verifier=SignatureVerifier(SECRET))
    async with httpx.AsyncClient(transport=platform(SECRET), auth=auth) as client:
        response = await client.post("https://platform.example.com/tipline/enrich", json={"user_id": "user-9"})
    assert response.status_code == 200
