"""Runtime settings, read once from the environment and passed down.

Every variable the deployed functions read is listed here (Terraform sets
exactly these); nothing else in the code reads the environment.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import ClassVar

from shared.imaging import DecodeLimits
from shared.thresholds import ClassThresholds, parse_overrides

#: SHADOW values: "auto" (shadow when a candidate pointer exists), "off"
SHADOW_MODES = ("auto", "off")


class SettingsError(ValueError):
    """A required setting is missing or a value does not parse."""


@dataclass(frozen=True)
class Settings:
    project: str
    incoming_bucket: str
    processed_bucket: str
    models_bucket: str
    #: the auto threshold (and check threshold: no check band) of classes the model's
    #: manifest measured no thresholds for (shared/thresholds.py)
    confidence_threshold: float = 0.6
    #: per-class overrides of the manifest's thresholds, "<label>=<auto>[/<check>],...";
    #: "*=0.6" applies one threshold to every class (shared/thresholds.py); empty: none
    class_thresholds: str = ""
    top_k: int = 3
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 16_000_000
    model_cache_dir: str = "/tmp/fashion-model"
    model_refresh_seconds: float = 60.0
    firestore_database: str = "(default)"
    log_level: str = "INFO"
    # HTTPS predict function
    max_request_bytes: int = 32 * 1024 * 1024
    max_batch_images: int = 16
    gcs_allowed_buckets: str = ""  # comma-separated bucket names a gcs_uri may name; empty: none
    api_key: str = ""  # empty: no API key required (the platform's IAM guards the function)
    cors_origins: str = ""  # comma-separated allowed origins, or "*"; empty: CORS off
    # sweep function (defaults; a request may override them)
    sweep_min_age_seconds: float = 300.0  # younger uploads are left to their events
    sweep_budget_seconds: float = 240.0  # time budget of one run (keep below the function timeout)
    sweep_max_objects: int = 0  # at most this many objects per run; 0: no limit
    # processing core
    lease_seconds: float = 120.0  # how long one delivery holds an object version; a crashed one blocks others this long
    dependency_deadline_seconds: float = 15.0  # total retry time of one Firestore or Storage call before "retry later"
    sku_metadata_key: str = "sku"  # the uploader's custom metadata key holding a SKU, stored in the record's ``sku``
    # completion events (shared/result_events.py, docs/events.md)
    events_topic: str = ""  # Pub/Sub topic id (in ``project``) or full path; empty: events off
    events_grace_seconds: float = 60.0  # the sweep publishes events still pending this long after their record was written
    # counter shards per day (stats/<day>/shards/<n>): each sustains about one write a second in Cloud
    # Firestore, so this caps finished objects a second (docs/backfill.md); readers sum whatever shards exist
    stats_shards: int = 50
    # shadow mode: "auto" scores each upload with the candidate model too (models/candidate.json, when it
    # exists) and stores its answer in the record's ``candidate`` field, never acting on it; "off": never
    shadow: str = "auto"
    # TEST-ONLY: failpoints in the processing core (functions/failpoints.py), e.g.
    # "after_copy=crash"; empty (the default, and what Terraform deploys): off
    failpoints: str = ""
    # review desk (functions/review_api.py)
    reviewer: str = ""  # local reviewer name (no IAP); empty: the OS user running the function
    iap_audience: str = ""  # set in the cloud: the reviewer comes from the verified IAP JWT with this audience
    review_url_key: str = ""  # HMAC key of the local image URLs; empty: a random key per instance
    review_url_ttl_seconds: int = 300  # how long an image URL stays valid (1..900)
    review_image_urls: str = "proxy"  # "proxy": bytes through the function, HMAC-signed URLs; "signed": V4 signed URLs

    #: environment variable -> field
    ENV: ClassVar[dict[str, str]] = {
        "GOOGLE_CLOUD_PROJECT": "project",
        "INCOMING_BUCKET": "incoming_bucket",
        "PROCESSED_BUCKET": "processed_bucket",
        "MODELS_BUCKET": "models_bucket",
        "CONFIDENCE_THRESHOLD": "confidence_threshold",
        "CLASS_THRESHOLDS": "class_thresholds",
        "TOP_K": "top_k",
        "MAX_IMAGE_BYTES": "max_image_bytes",
        "MAX_IMAGE_PIXELS": "max_image_pixels",
        "MODEL_CACHE_DIR": "model_cache_dir",
        "MODEL_REFRESH_SECONDS": "model_refresh_seconds",
        "FIRESTORE_DATABASE": "firestore_database",
        "LOG_LEVEL": "log_level",
        "MAX_REQUEST_BYTES": "max_request_bytes",
        "MAX_BATCH_IMAGES": "max_batch_images",
        "GCS_ALLOWED_BUCKETS": "gcs_allowed_buckets",
        "API_KEY": "api_key",
        "CORS_ORIGINS": "cors_origins",
        "SWEEP_MIN_AGE_SECONDS": "sweep_min_age_seconds",
        "SWEEP_BUDGET_SECONDS": "sweep_budget_seconds",
        "SWEEP_MAX_OBJECTS": "sweep_max_objects",
        "LEASE_SECONDS": "lease_seconds",
        "DEPENDENCY_DEADLINE_SECONDS": "dependency_deadline_seconds",
        "SKU_METADATA_KEY": "sku_metadata_key",
        "EVENTS_TOPIC": "events_topic",
        "EVENTS_GRACE_SECONDS": "events_grace_seconds",
        "STATS_SHARDS": "stats_shards",
        "SHADOW": "shadow",
        "FAILPOINTS": "failpoints",
        "REVIEWER": "reviewer",
        "IAP_AUDIENCE": "iap_audience",
        "REVIEW_URL_KEY": "review_url_key",
        "REVIEW_URL_TTL_SECONDS": "review_url_ttl_seconds",
        "REVIEW_IMAGE_URLS": "review_image_urls",
    }
    REQUIRED: ClassVar[tuple[str, ...]] = ("GOOGLE_CLOUD_PROJECT", "INCOMING_BUCKET", "PROCESSED_BUCKET", "MODELS_BUCKET")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        missing = [name for name in cls.REQUIRED if not environ.get(name)]
        if missing:
            raise SettingsError(f"missing required settings: {', '.join(missing)}")
        types = {f.name: f.type for f in fields(cls)}
        values = {}
        for variable, name in cls.ENV.items():
            if variable not in environ or environ[variable] == "":
                continue
            raw = environ[variable]
            kind = types[name]
            try:
                values[name] = float(raw) if kind == "float" else int(raw) if kind == "int" else raw
            except ValueError as exc:
                raise SettingsError(f"{variable}={raw!r} is not a valid {kind}") from exc
        settings = cls(**values)
        if not 0.0 <= settings.confidence_threshold <= 1.0:
            raise SettingsError("CONFIDENCE_THRESHOLD must be between 0 and 1")
        try:
            parse_overrides(settings.class_thresholds)
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc
        if settings.incoming_bucket == settings.processed_bucket:
            raise SettingsError("INCOMING_BUCKET and PROCESSED_BUCKET must differ, or moves would re-trigger the function")
        if settings.max_batch_images < 1 or settings.max_request_bytes < 1:
            raise SettingsError("MAX_BATCH_IMAGES and MAX_REQUEST_BYTES must be positive")
        if settings.lease_seconds <= 0 or settings.dependency_deadline_seconds <= 0:
            raise SettingsError("LEASE_SECONDS and DEPENDENCY_DEADLINE_SECONDS must be positive")
        if settings.events_grace_seconds < 0:
            raise SettingsError("EVENTS_GRACE_SECONDS must be >= 0")
        if settings.stats_shards < 1:
            raise SettingsError("STATS_SHARDS must be positive")
        if not 1 <= settings.review_url_ttl_seconds <= 900:
            raise SettingsError("REVIEW_URL_TTL_SECONDS must be between 1 and 900 (image URLs expire within minutes)")
        if settings.review_image_urls not in ("proxy", "signed"):
            raise SettingsError("REVIEW_IMAGE_URLS must be proxy or signed")
        if settings.shadow not in SHADOW_MODES:
            raise SettingsError(f"SHADOW={settings.shadow!r}: expected one of {', '.join(SHADOW_MODES)}")
        return settings

    @property
    def reviewer_name(self) -> str:
        """The local reviewer: ``REVIEWER``, else the OS user running the function."""
        return self.reviewer or pwd.getpwuid(os.getuid()).pw_name

    @property
    def shadow_on(self) -> bool:
        """Whether the classify path scores uploads with a candidate model (when one is published)."""
        return self.shadow == "auto"

    @property
    def allowed_buckets(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.gcs_allowed_buckets.split(",") if name.strip())

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset(origin.strip() for origin in self.cors_origins.split(",") if origin.strip())

    @property
    def events_topic_path(self) -> str | None:
        """The events topic as ``projects/<p>/topics/<t>``; None when events are off."""
        topic = self.events_topic.strip()
        if not topic:
            return None
        return topic if topic.startswith("projects/") else f"projects/{self.project}/topics/{topic}"

    @property
    def threshold_overrides(self) -> dict[str, ClassThresholds]:
        """``CLASS_THRESHOLDS`` parsed (checked by :meth:`from_env`)."""
        return parse_overrides(self.class_thresholds)

    @property
    def decode_limits(self) -> DecodeLimits:
        return DecodeLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)
