"""The current model, loaded once per instance from the models bucket and
swapped when the pointer names a newer version (no redeploy needed). The
same cache over ``models/candidate.json`` (``optional=True``) holds the
candidate model of shadow mode, or nothing while no candidate is published."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.classifier import Classifier
from shared.errors import ModelError
from shared.manifest import Manifest
from shared.model_layout import MANIFEST_FILE, MODEL_FILE, POINTER, check_version, parse_pointer, version_prefix

#: what an optional cache's pointer check returns when no pointer exists
_ABSENT = object()

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """No usable model yet (transient: the platform should retry)."""


class ModelCache:
    def __init__(
        self,
        storage_client: Any,
        bucket: str,
        cache_dir: str | Path,
        refresh_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        retry: Any = None,
        timeout: float = 60.0,
        pointer: str = POINTER,
        optional: bool = False,
    ) -> None:
        """``pointer``: the pointer object it follows (the current model's by
        default); ``optional``: a missing pointer means "no model" (see
        :meth:`get_optional`), not an error. ``retry`` (a google.api_core Retry; None: the Storage client's
        default, which retries for 120 s) and ``timeout`` bound each Storage
        call: the pointer check runs under the lock on a request's path, so a
        Storage outage must not hold every request for minutes."""
        self._bucket = storage_client.bucket(bucket)
        self._calls: dict[str, Any] = {"timeout": timeout} | ({"retry": retry} if retry is not None else {})
        self._cache_dir = Path(cache_dir)
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._classifier: Classifier | None = None
        self._version: str | None = None  # as the pointer names it
        self._checked = float("-inf")
        self._pointer = pointer
        self._optional = optional
        self._manifests: dict[str, Manifest] = {}  # manifest_of()'s versions

    @property
    def loaded(self) -> Classifier | None:
        return self._classifier

    def get(self) -> Classifier:
        """The current classifier; checks the pointer at most every
        ``refresh_seconds``. Keeps serving the loaded model if the check fails."""
        if self._classifier is not None and self._clock() - self._checked < self._refresh:
            return self._classifier
        with self._lock:
            if self._classifier is not None and self._clock() - self._checked < self._refresh:
                return self._classifier
            try:
                version = parse_pointer(self._bucket.blob(self._pointer).download_as_bytes(**self._calls))
                if self._classifier is None or self._version != version:
                    self._classifier, self._version = self._load(version), version
                    log.info("model %s loaded", version, extra={"model_version": version})
            except Exception as exc:
                if self._classifier is None:
                    raise ModelUnavailable(f"no usable model in gs://{self._bucket.name}: {exc}") from exc
                log.warning(
                    "model check failed, serving %s: %s",
                    self._classifier.version,
                    exc,
                    extra={"model_version": self._classifier.version},
                )
            self._checked = self._clock()
            return self._classifier

    def manifest_of(self, version: str) -> Manifest:
        """The manifest of model ``version`` (``models/<version>/manifest.json``):
        the loaded model's when it is that version, else read from the models
        bucket once and kept (a version's manifest never changes). Raises
        ModelUnavailable when it cannot be read or is invalid."""
        loaded = self._classifier
        if loaded is not None and loaded.version == version:
            return loaded.manifest
        with self._lock:
            cached = self._manifests.get(version)
        if cached is not None:
            return cached
        try:
            data = self._bucket.blob(version_prefix(check_version(version)) + MANIFEST_FILE).download_as_bytes(**self._calls)
            manifest = Manifest.from_dict(json.loads(data))
        except Exception as exc:
            raise ModelUnavailable(f"the manifest of model {version!r} cannot be read: {exc}") from exc
        with self._lock:
            self._manifests[version] = manifest
        return manifest

    def get_optional(self) -> Classifier | None:
        """For an ``optional`` cache: the model the pointer names, or None
        while there is no pointer (checked at most every ``refresh_seconds``;
        a model that stops loading, or a check that fails, also gives None
        once no model is loaded). Never raises."""
        if self._clock() - self._checked < self._refresh:
            return self._classifier
        with self._lock:
            if self._clock() - self._checked < self._refresh:
                return self._classifier
            try:
                from google.api_core.exceptions import NotFound

                try:
                    data = self._bucket.blob(self._pointer).download_as_bytes(**self._calls)
                except NotFound:
                    self._classifier, self._version = None, None
                    data = None
                if data is not None:
                    version = parse_pointer(data)
                    if self._classifier is None or self._version != version:
                        self._classifier, self._version = self._load(version), version
                        log.info("model %s loaded from %s", version, self._pointer, extra={"model_version": version})
            except Exception as exc:  # noqa: BLE001 - an optional model never fails its caller
                log.warning("optional model check of %s failed: %s", self._pointer, exc, extra={"pointer": self._pointer})
            self._checked = self._clock()
            return self._classifier

    def _load(self, version: str) -> Classifier:
        folder = self._cache_dir / version
        folder.mkdir(parents=True, exist_ok=True)
        for name in (MANIFEST_FILE, MODEL_FILE):
            path = folder / name
            if not path.is_file():
                tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")  # concurrent loaders never share it
                self._bucket.blob(version_prefix(version) + name).download_to_filename(str(tmp), **self._calls)
                tmp.replace(path)
        try:
            return Classifier.load(folder)
        except ModelError:
            for name in (MANIFEST_FILE, MODEL_FILE):  # a bad cached copy: fetch afresh next time
                (folder / name).unlink(missing_ok=True)
            raise
