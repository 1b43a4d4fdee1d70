"""The review desk's trust checks, pure logic: the IAP JWT verified with a
locally generated ES256 key (IAP's key server replaced by a transport that
answers with that key: no network), the HMAC image URLs, the CSRF check, and
the decision request's validation."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import crypt, jwt

from functions.review_auth import (
    IAP_CERTS_URL,
    IAP_HEADER,
    IAP_ISSUER,
    IapIdentity,
    ImageUrlSigner,
    Unauthorized,
    csrf_problem,
)
from functions.review_desk import DecisionRequest, QueueQuery, ReviewError
from shared import records as rec
from shared.review_backlog import margin_of

AUDIENCE = "/projects/123/global/backendServices/456"


@dataclass
class _Response:
    status: int
    data: bytes


class KeyServer:
    """Answers IAP's public-key URL with ``{kid: PEM}``, and counts the fetches."""

    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys
        self.fetches = 0

    def __call__(self, url: str, method: str = "GET", **_kwargs: Any) -> _Response:
        assert url == IAP_CERTS_URL and method == "GET"
        self.fetches += 1
        pems = {
            kid: key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
            for kid, key in self.keys.items()
        }
        return _Response(200, json.dumps(pems).encode())


def _token(key: Any, kid: str, **claims: Any) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signer = crypt.ES256Signer.from_string(pem, key_id=kid)
    now = int(time.time())
    payload = {"iss": IAP_ISSUER, "aud": AUDIENCE, "email": "ana@example.com", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(signer, payload).decode()


@pytest.fixture(scope="module")
def key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


def test_a_valid_iap_assertion_names_the_reviewer(key: Any):
    server = KeyServer({"k1": key})
    identity = IapIdentity(AUDIENCE, request=server)
    assert identity.reviewer({IAP_HEADER: _token(key, "k1")}) == "ana@example.com"
    assert identity.reviewer({IAP_HEADER: _token(key, "k1", email="bo@example.com")}) == "bo@example.com"
    assert server.fetches == 1  # the keys are cached


@pytest.mark.parametrize(
    ("claims", "kid"),
    [
        ({"aud": "/projects/123/global/backendServices/999"}, "k1"),  # another backend's token
        ({"iss": "https://accounts.google.com"}, "k1"),  # not issued by IAP
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "k1"),  # expired
        ({"email": ""}, "k1"),
        ({}, "unknown-kid"),
    ],
)
def test_a_bad_iap_assertion_is_refused(key: Any, claims: dict, kid: str):
    identity = IapIdentity(AUDIENCE, request=KeyServer({"k1": key, "unknown-other": ec.generate_private_key(ec.SECP256R1())}))
    token = _token(key, kid, **claims)
    with pytest.raises(Unauthorized):
        identity.reviewer({IAP_HEADER: token})


def test_an_assertion_signed_by_another_key_or_tampered_is_refused(key: Any):
    identity = IapIdentity(AUDIENCE, request=KeyServer({"k1": key}))
    forged = _token(ec.generate_private_key(ec.SECP256R1()), "k1")
    with pytest.raises(Unauthorized):
        identity.reviewer({IAP_HEADER: forged})
    head, _body, signature = _token(key, "k1").split(".")
    other_body = _token(key, "k1", email="mallory@example.com").split(".")[1]
    with pytest.raises(Unauthorized):
        identity.reviewer({IAP_HEADER: f"{head}.{other_body}.{signature}"})
    with pytest.raises(Unauthorized):
        identity.reviewer({})
    with pytest.raises(Unauthorized):
        identity.reviewer({IAP_HEADER: "not-a-jwt"})


def test_image_urls_expire_and_are_bound_to_an_item():
    now = [1_000_000.0]
    signer = ImageUrlSigner(b"k" * 32, ttl=300, clock=lambda: now[0])
    url = signer.url("abc")
    exp, sig = url.split("exp=")[1].split("&sig=")
    assert url.startswith("/api/items/abc/image?") and int(exp) == 1_000_300
    assert signer.check("abc", exp, sig) is None
    assert signer.check("abd", exp, sig) is not None
    assert signer.check("abc", str(int(exp) + 1), sig) is not None
    assert signer.check("abc", exp, sig[:-1] + ("0" if sig[-1] != "0" else "1")) is not None
    assert signer.check("abc", "soon", sig) is not None and signer.check("abc", exp, None) is not None
    now[0] += 301
    assert "expired" in (signer.check("abc", exp, sig) or "")
    assert ImageUrlSigner(b"", 60).key != ImageUrlSigner(b"", 60).key  # no key: a random one per instance


def test_csrf_check():
    ok = {"x-requested-with": "fashion-review", "host": "review.example"}
    assert csrf_problem(ok) is None
    assert csrf_problem(ok | {"origin": "https://review.example"}) is None
    assert csrf_problem({"host": "review.example"}) is not None
    assert csrf_problem(ok | {"origin": "https://evil.example"}) is not None
    assert csrf_problem(ok | {"origin": "null"}) is not None
    assert csrf_problem(ok | {"origin": "https://review.example.evil.example"}) is not None


def test_decision_and_queue_validation():
    assert DecisionRequest.from_dict({"id": "a", "action": "relabel", "label": "Tops"}).label == "Tops"
    for bad in (None, [], {"id": "a"}, {"id": "", "action": "approve"}, {"id": "a", "action": "approve", "change": 1}):
        with pytest.raises(ReviewError) as info:
            DecisionRequest.from_dict(bad)
        assert info.value.kind == ReviewError.INVALID
    assert QueueQuery.from_args({"order": "uncertain", "page_size": "5"}).page_size == 5
    with pytest.raises(ReviewError):
        QueueQuery.from_args({"band": rec.BAND_AUTO})
    record = rec.Classification(top_k=[{"label": "a", "score": 0.5}, {"label": "b", "score": 0.3}])
    assert margin_of(record) == pytest.approx(0.2)
    assert margin_of(rec.Classification(top_k=[{"label": "a", "score": 0.9}])) == pytest.approx(0.9)


def test_final_label_of_a_record():
    assert rec.Classification(status=rec.CLASSIFIED, label="Tops").final_label == "Tops"
    assert rec.Classification(status=rec.NEEDS_REVIEW, label="Tops").final_label is None
    reviewed = rec.Classification(status=rec.REVIEWED, label="Tops", review={"decision": "relabeled", "final_label": "Tshirts"})
    assert reviewed.final_label == "Tshirts"
    assert rec.REVIEWED in rec.FINISHED and rec.REVIEWED in rec.STATUSES


def test_backlog_counts_bands_age_days_and_accuracy():
    from datetime import UTC, datetime, timedelta

    from shared.review_backlog import backlog_of

    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    day1, day2 = now - timedelta(days=1), now

    def reviewed(decision: str, at: datetime) -> rec.Classification:
        return rec.Classification(status=rec.REVIEWED, review={"decision": decision, "reviewed_at": at})

    records = [
        rec.Classification(status=rec.NEEDS_REVIEW, band=rec.BAND_CHECK, created_at=now - timedelta(hours=2)),
        rec.Classification(status=rec.NEEDS_REVIEW, band=None, created_at=now - timedelta(hours=5)),  # before bands: review
        rec.Classification(status=rec.NEEDS_REVIEW, band=rec.BAND_REVIEW, created_at=now - timedelta(hours=1)),
        rec.Classification(status=rec.CLASSIFIED, band=rec.BAND_AUTO, created_at=now - timedelta(days=9)),
        reviewed(rec.APPROVED, day1),
        reviewed(rec.APPROVED, day2),
        reviewed(rec.RELABELED, day2),
        reviewed(rec.REVIEW_REJECTED, day2),
    ]
    backlog = backlog_of(records, now).to_dict()
    assert backlog["per_band"] == {rec.BAND_CHECK: 1, rec.BAND_REVIEW: 2} and backlog["total"] == 3
    assert backlog["oldest_age_s"] == 5 * 3600
    assert backlog["reviewed_per_day"] == {
        "2026-11-28": {"approved": 1},
        "2026-11-29": {"approved": 1, "relabeled": 1, "rejected": 1},
    }
    assert backlog["reviewed"] == 4 and backlog["model_right"] == 2 and backlog["accuracy_on_reviewed"] == 0.5
    empty = backlog_of([], now).to_dict()
    assert empty["oldest_age_s"] is None and empty["accuracy_on_reviewed"] is None and empty["total"] == 0
