"""Who may use the review desk, and how its requests and image URLs are
trusted. Pure logic over headers, keys and clocks: no Flask here.

- :class:`ImageUrlSigner`: the local image URLs, ``/api/items/<id>/image?exp=<unix>&sig=<hex>``,
  HMAC-SHA256 over the id and the expiry with a key from ``REVIEW_URL_KEY``.
- :class:`IapIdentity`: in the cloud, the reviewer is the ``email`` claim of the
  IAP JWT (header ``x-goog-iap-jwt-assertion``), verified with google-auth's
  ``id_token.verify_token`` against IAP's public keys (ES256) and the audience
  ``IAP_AUDIENCE``; :class:`LocalIdentity`: the ``REVIEWER`` setting.
- :func:`csrf_problem`: a decision must carry ``X-Requested-With: fashion-review``
  (a header a cross-site form cannot send) and an ``Origin``, when present,
  equal to the request's own host.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

#: IAP's public keys, {key id: PEM} (https://cloud.google.com/iap/docs/signed-headers-howto)
IAP_CERTS_URL = "https://www.gstatic.com/iap/verify/public_key"
IAP_ISSUER = "https://cloud.google.com/iap"
IAP_HEADER = "x-goog-iap-jwt-assertion"
CSRF_HEADER, CSRF_VALUE = "x-requested-with", "fashion-review"
#: seconds the fetched IAP keys are kept (IAP rotates them rarely; google-auth would fetch them on every call)
CERTS_CACHE_SECONDS = 3600.0


class Unauthorized(Exception):
    """No verifiable reviewer identity (HTTP 401)."""


class ImageUrlSigner:
    """HMAC-signed, expiring image URLs. ``key``: bytes (empty: a random key,
    valid for this instance only); ``ttl``: seconds a URL stays valid."""

    def __init__(self, key: bytes, ttl: int, clock: Callable[[], float] = time.time) -> None:
        self.key = key or secrets.token_bytes(32)
        self.ttl = ttl
        self.clock = clock

    def _signature(self, doc_id: str, expires: int) -> str:
        return hmac.new(self.key, f"{doc_id}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, doc_id: str) -> str:
        """The relative URL of a record's image, valid ``ttl`` seconds from now."""
        expires = int(self.clock()) + self.ttl
        return f"/api/items/{doc_id}/image?exp={expires}&sig={self._signature(doc_id, expires)}"

    def check(self, doc_id: str, expires: str | None, signature: str | None) -> str | None:
        """None when the URL is valid; else why not (expired, malformed, bad signature)."""
        try:
            when = int(expires or "")
        except ValueError:
            return "the image URL has no valid expiry"
        if not signature or not hmac.compare_digest(signature.encode(), self._signature(doc_id, when).encode()):
            return "the image URL's signature does not match"
        now = self.clock()
        if when < now:
            return "the image URL has expired"
        if when > now + self.ttl + 5:
            return "the image URL expires later than any URL this service signs"
        return None


class LocalIdentity:
    """The reviewer locally: one name from the settings."""

    def __init__(self, name: str) -> None:
        self.name = name

    def reviewer(self, headers: Mapping[str, str]) -> str:
        return self.name


class _CachingRequest:
    """A google-auth transport request that keeps the response of each GET
    for ``seconds`` (the IAP keys)."""

    def __init__(self, request: Callable[..., Any], seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._request, self._seconds, self._clock = request, seconds, clock
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        with self._lock:
            hit = self._cache.get(url)
            if method == "GET" and hit and self._clock() - hit[0] < self._seconds:
                return hit[1]
        response = self._request(url, method=method, **kwargs)
        if method == "GET" and getattr(response, "status", None) == 200:
            with self._lock:
                self._cache[url] = (self._clock(), response)
        return response


class IapIdentity:
    """The reviewer in the cloud: the verified IAP JWT's ``email``.
    ``request``: a google-auth transport request (default:
    ``google.auth.transport.requests.Request()``), cached for an hour."""

    def __init__(self, audience: str, request: Callable[..., Any] | None = None, certs_url: str = IAP_CERTS_URL) -> None:
        if request is None:
            from google.auth.transport.requests import Request

            request = Request()
        self.audience = audience
        self.certs_url = certs_url
        self._request = _CachingRequest(request, CERTS_CACHE_SECONDS)

    def reviewer(self, headers: Mapping[str, str]) -> str:
        """The email of the verified assertion. Raises Unauthorized."""
        from google.auth import exceptions
        from google.oauth2 import id_token

        token = headers.get(IAP_HEADER, "")
        if not token:
            raise Unauthorized("no IAP assertion: the review desk is reached through Identity-Aware Proxy only")
        try:
            claims = id_token.verify_token(
                token, self._request, audience=self.audience, certs_url=self.certs_url, clock_skew_in_seconds=30
            )
        except (ValueError, exceptions.GoogleAuthError) as exc:
            raise Unauthorized(f"the IAP assertion does not verify: {exc}") from None
        if claims.get("iss") != IAP_ISSUER:
            raise Unauthorized("the assertion was not issued by IAP")
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise Unauthorized("the IAP assertion names no email")
        return email


def csrf_problem(headers: Mapping[str, str]) -> str | None:
    """None when a state-changing request is same-origin by its headers
    (lower-case names); else why not."""
    if headers.get(CSRF_HEADER, "") != CSRF_VALUE:
        return f"decisions need the header X-Requested-With: {CSRF_VALUE}"
    origin = headers.get("origin")
    if origin is None:
        return None
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.netloc.lower() != host.lower():
        return "cross-origin decisions are refused"
    return None
