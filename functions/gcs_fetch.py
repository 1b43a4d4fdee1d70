"""Reads the object a prediction request names by ``gcs_uri``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from google.api_core.exceptions import Forbidden, GoogleAPIError, NotFound

from functions.dependencies import CALL_TIMEOUT, storage_retry
from functions.predict_api import ApiError
from shared.settings import Settings

log = logging.getLogger(__name__)


def gcs_fetcher(storage: Any, settings: Settings) -> Callable[[str, str], bytes]:
    """``fetch(bucket, name) -> bytes``, every call bounded like every other
    Storage call (``DEPENDENCY_DEADLINE_SECONDS``, not the client's 120 s).
    Raises ApiError: 413 ``too_large`` (over ``MAX_IMAGE_BYTES``), 404
    ``not_found``, 403 ``forbidden``, 503 ``storage_unavailable``."""
    calls = {"retry": storage_retry(settings.dependency_deadline_seconds), "timeout": CALL_TIMEOUT}

    def fetch(bucket: str, name: str) -> bytes:
        blob = storage.bucket(bucket).blob(name)
        try:
            blob.reload(**calls)
            if blob.size is not None and blob.size > settings.max_image_bytes:
                raise ApiError(413, "too_large", f"the object is {blob.size} bytes; the limit is {settings.max_image_bytes}")
            return blob.download_as_bytes(**calls)
        except NotFound:
            raise ApiError(404, "not_found", f"gs://{bucket}/{name} does not exist") from None
        except Forbidden:
            raise ApiError(403, "forbidden", f"this service may not read gs://{bucket}/{name}") from None
        except (GoogleAPIError, ConnectionError, TimeoutError) as exc:
            log.warning("cannot read gs://%s/%s: %s", bucket, name, exc)
            raise ApiError(503, "storage_unavailable", "Cloud Storage is unavailable; retry later") from None

    return fetch
