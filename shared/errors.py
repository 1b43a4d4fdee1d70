"""Typed errors with machine-readable reasons."""

from __future__ import annotations


class ImageError(ValueError):
    """The input is not a usable image.

    ``reason`` is a short machine-readable code (for records, HTTP errors and
    metrics); the message is for people.
    """

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    TOO_SMALL = "too_small"
    #: every reason above
    REASONS = frozenset({EMPTY, TOO_LARGE, TOO_MANY_PIXELS, NOT_AN_IMAGE, UNSUPPORTED_FORMAT, TRUNCATED, CORRUPT, TOO_SMALL})

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message}


class ModelError(RuntimeError):
    """A model artifact is missing, inconsistent or fails its hash check."""
