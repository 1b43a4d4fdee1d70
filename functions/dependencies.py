"""How the core calls its dependencies (Firestore, Cloud Storage): one call
timeout, bounded retries, and which errors are transient ("retry later")."""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_transient_error
from google.cloud.storage.retry import DEFAULT_RETRY as STORAGE_RETRY

#: errors that mean "a dependency is unavailable; retry later"
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.DeadlineExceeded,
    gexc.Aborted,
    gexc.RetryError,
    gexc.GatewayTimeout,
    ConnectionError,
    TimeoutError,
)
#: errors that stop a whole request (a sweep run, a report): any Google API
#: error, or the connection failing
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (gexc.GoogleAPIError, ConnectionError, TimeoutError)
#: Timeout of one Firestore or Storage call, seconds (retries: bounded_retry)
CALL_TIMEOUT = 20.0


def bounded_retry(deadline: float, base: Retry | None = None) -> Retry:
    """Bounded retries for Firestore calls, or (``base``: the Storage client's
    retry, with its own idea of what is retryable) for Storage calls, lasting
    ``deadline`` seconds (the settings' ``dependency_deadline_seconds``): a
    dependency that is down answers 5xx within seconds (and the platform
    retries), rather than hanging the request (the Storage client's default
    retries for 120 s)."""
    if base is None:
        return Retry(initial=0.2, maximum=2.0, multiplier=2.0, predicate=if_transient_error, timeout=deadline)
    return base.with_delay(initial=0.2, maximum=2.0, multiplier=2.0).with_timeout(deadline)


def storage_retry(deadline: float) -> Retry:
    """The Storage client's retry, bounded to ``deadline`` seconds."""
    return bounded_retry(deadline, STORAGE_RETRY)


def transient_cause(exc: BaseException) -> BaseException | None:
    """The transient error in ``exc``'s chain of causes and contexts, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TRANSIENT_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
