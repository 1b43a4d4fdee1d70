"""Publishing the completion events through the record's outbox.

Knows nothing of HTTP or CloudEvent requests. A writer that finishes a record
version calls :meth:`EventOutbox.stage_finished` (the classify path) or
:meth:`EventOutbox.stage_decided` (a review decision) while building its
final write, and merges the returned fields into that same write: the record
and the news of it commit together. After the commit it calls
:meth:`EventOutbox.deliver`, which publishes every waiting event of the record
to the ``EVENTS_TOPIC`` Pub/Sub topic and marks it sent. A crash between the
commit and the publish leaves the event pending: a redelivered storage event
finding the record finished delivers it, and so does the sweep
(:meth:`EventOutbox.republish`) once it has waited ``EVENTS_GRACE_SECONDS``.
Delivery is at least once: an event may be published more than once, always
with the same id.

With no topic configured, events are off: nothing is staged or published, and
the first use logs so once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc

from shared import outbox as box
from shared import records as rec
from shared import result_events as events
from shared.settings import Settings

log = logging.getLogger(__name__)

#: seconds to wait for Pub/Sub to accept one message
PUBLISH_TIMEOUT = 10.0
#: how many times marking an event sent re-reads the record after losing a write race
_MARK_ATTEMPTS = 5


class Publisher:
    """Publishes an event to one Pub/Sub topic (google-cloud-pubsub, created on
    first use; ``PUBSUB_EMULATOR_HOST`` points it at the emulator)."""

    def __init__(self, topic_path: str, client: Any = None, timeout: float = PUBLISH_TIMEOUT) -> None:
        self.topic_path = topic_path
        self.timeout = timeout
        self._client = client
        self._lock = threading.Lock()

    def _publisher(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import pubsub_v1

                self._client = pubsub_v1.PublisherClient()
            return self._client

    def publish(self, event: Mapping[str, Any]) -> str:
        """Publish ``event`` (body: the CloudEvent JSON; attributes:
        :func:`shared.result_events.attributes`); the message id. Raises the
        client's errors (GoogleAPIError, TimeoutError) when Pub/Sub does not
        accept it within :attr:`timeout` seconds."""
        future = self._publisher().publish(self.topic_path, events.encode(event), **events.attributes(event))
        return str(future.result(timeout=self.timeout))


class EventOutbox:
    """Stages, publishes and marks sent the events of ``classifications`` records.

    ``db``: a google-cloud-firestore client; ``publisher``: a :class:`Publisher`
    (None: events off); ``retry``/``timeout``: of every Firestore call."""

    def __init__(
        self,
        settings: Settings,
        db: Any,
        publisher: Publisher | None,
        *,
        retry: Any = None,
        timeout: float = 30.0,
        now: Callable[[], datetime] = rec.utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.publisher = publisher
        self.now = now
        self._calls: dict[str, Any] = {"timeout": timeout} | ({"retry": retry} if retry is not None else {})
        self._told_off = False

    @classmethod
    def from_settings(cls, settings: Settings, db: Any, **options: Any) -> EventOutbox:
        """The outbox of ``settings``: publishing to ``EVENTS_TOPIC``, or off when it is empty."""
        path = settings.events_topic_path
        return cls(settings, db, Publisher(path) if path else None, **options)

    @property
    def enabled(self) -> bool:
        if self.publisher is None and not self._told_off:
            self._told_off = True
            log.info("completion events are off: no EVENTS_TOPIC configured", extra={"events": "off"})
        return self.publisher is not None

    # -- staging (inside the writer's final write) ------------------------------------

    def stage_finished(self, record: Mapping[str, Any], record_id: str, now: datetime) -> dict[str, Any]:
        """The fields to merge into the classify path's final write of
        ``record`` (the document as it will be): the outbox with its
        ``fashion.classification.v1.finished`` event pending; empty when
        events are off or the status publishes none (skipped, empty)."""
        if not self.enabled or not events.wants_event(record.get(rec.Field.STATUS)):
            return {}
        event = self._event(record, record_id, events.FINISHED_TYPE, 1)
        return box.update(box.staged(record.get(rec.Field.OUTBOX), event, now))

    def stage_decided(self, record: Mapping[str, Any], record_id: str, now: datetime) -> dict[str, Any]:
        """The fields to merge into a review decision's write of ``record``
        (the document as it will be, its ``review`` map set): the outbox with
        its ``fashion.review.v1.decided`` event pending (record version 2 for
        the first decision, one more for each earlier one); empty when events
        are off."""
        if not self.enabled:
            return {}
        event = self._event(record, record_id, events.DECIDED_TYPE, events.decision_version(record))
        return box.update(box.staged(record.get(rec.Field.OUTBOX), event, now))

    def on_decided(self, record_id: str, record: Mapping[str, Any] | None = None) -> int:
        """A repair hook for a decision on ``record_id`` committed without its
        event (``record``: the document as written; read when None). The
        review desk does not need it: it stages with :meth:`stage_decided` in
        the decision's own write and calls :meth:`deliver` after the commit.
        stages the ``fashion.review.v1.decided`` event of the record's
        current decision in its outbox, unless that decision's event is
        already there (the decision's own write may have staged it with
        :meth:`stage_decided`, which also covers a crash before this call),
        then publishes what waits. Returns the number published; never
        raises for an unavailable Pub/Sub or Firestore (see :meth:`deliver`)."""
        if not self.enabled:
            return 0
        doc = self.db.collection(rec.COLLECTION).document(record_id)
        try:
            for _ in range(_MARK_ATTEMPTS):
                snapshot = doc.get(**self._calls)
                if not snapshot.exists:
                    log.warning("no record %s to publish a decision of", record_id)
                    return 0
                stored = snapshot.to_dict() or {}
                merged = stored if record is None else {**stored, **record, rec.Field.OUTBOX: stored.get(rec.Field.OUTBOX)}
                staged = self.stage_decided(merged, record_id, self.now())
                if staged[rec.Field.OUTBOX] == stored.get(rec.Field.OUTBOX):
                    break  # already staged (or sent)
                option = self.db.write_option(last_update_time=snapshot.update_time)
                try:
                    doc.update(staged, option=option, **self._calls)
                    break
                except gexc.FailedPrecondition:
                    continue
        except (gexc.GoogleAPIError, TimeoutError, ConnectionError, OSError) as exc:
            log.warning("decision event not staged: %s: %s", type(exc).__name__, exc, extra={"classification_id": record_id})
            return 0
        return self.deliver(record_id)

    def _event(self, record: Mapping[str, Any], record_id: str, kind: str, version: int) -> dict[str, Any]:
        return events.build(
            record,
            record_id,
            project=self.settings.project,
            database=self.settings.firestore_database,
            event_type=kind,
            version=version,
        )

    # -- publishing (after the commit) --------------------------------------------------

    def deliver(self, record_id: str, stored: Mapping[str, Any] | None = None) -> int:
        """Publish every waiting event of record ``record_id`` and mark each
        sent; the number published. ``stored``: the record as just written or
        read (saves a read when nothing waits). Never raises for an
        unavailable Pub/Sub or Firestore: it logs, and the events stay
        pending for a redelivery or the sweep."""
        if not self.enabled:
            return 0
        if stored is not None and not box.pending(stored.get(rec.Field.OUTBOX)):
            return 0
        doc = self.db.collection(rec.COLLECTION).document(record_id)
        context = {"classification_id": record_id}
        try:
            if stored is None:
                snapshot = doc.get(**self._calls)
                stored = (snapshot.to_dict() or {}) if snapshot.exists else {}
            waiting = box.pending(stored.get(rec.Field.OUTBOX))
            sent = []
            for event in waiting:
                message_id = self.publisher.publish(event)  # type: ignore[union-attr]
                sent.append(event["id"])
                log.info(
                    "event %s published",
                    event["type"],
                    extra=context
                    | {"event_id": event["id"], "event_type": event["type"], "message_id": message_id}
                    | {"attributes": events.attributes(event)},
                )
            if sent:
                self._mark_sent(doc, sent)
            return len(sent)
        except (gexc.GoogleAPIError, TimeoutError, ConnectionError, OSError) as exc:
            log.warning("event not published yet (the sweep retries): %s: %s", type(exc).__name__, exc, extra=context)
            return 0
        except Exception:  # the record is committed: never fail its delivery over its event
            log.exception("event not published yet (the sweep retries): unexpected failure", extra=context)
            return 0

    def _mark_sent(self, doc: Any, ids: list[str]) -> None:
        """Mark ``ids`` sent, only on the outbox as last read (another writer
        may have staged a newer event meanwhile: re-read and apply again)."""
        for _ in range(_MARK_ATTEMPTS):
            snapshot = doc.get(**self._calls)
            if not snapshot.exists:
                return
            outbox = (snapshot.to_dict() or {}).get(rec.Field.OUTBOX)
            states = box.event_states(outbox)
            if all(states.get(key) != box.PENDING for key in ids):
                return
            option = self.db.write_option(last_update_time=snapshot.update_time)
            try:
                doc.update(box.update(box.marked_sent(outbox, ids, self.now())), option=option, **self._calls)
                return
            except gexc.FailedPrecondition:
                continue
        log.warning("could not mark events sent after %d attempts; they may be published again", _MARK_ATTEMPTS)

    def republish(self, older_than: float, limit: int | None = None) -> dict[str, int]:
        """The sweep's part: publish the events of every record whose outbox
        has waited more than ``older_than`` seconds (a crash between commit
        and publish, Pub/Sub down). Returns ``{"records", "published"}``.
        Raises the Firestore client's errors when the query fails."""
        counts = {"records": 0, "published": 0}
        if not self.enabled:
            return counts
        from google.cloud.firestore import FieldFilter

        cutoff = self.now() - timedelta(seconds=older_than)
        query = self.db.collection(rec.COLLECTION).where(filter=FieldFilter(box.STATE_PATH, "==", box.PENDING))
        for snapshot in query.stream(**self._calls):
            data = snapshot.to_dict() or {}
            since = box.pending_since(data.get(rec.Field.OUTBOX))
            if since is not None and since > cutoff:
                continue  # its writer may still be publishing it
            if limit is not None and counts["records"] >= limit:
                break
            counts["records"] += 1
            counts["published"] += self.deliver(snapshot.id, data)
        return counts
