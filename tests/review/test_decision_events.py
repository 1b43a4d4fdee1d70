"""A review decision's completion event (``fashion.review.v1.decided``), end
to end on the real emulators: ``review`` functions started with
``EVENTS_TOPIC`` over the review stack's Storage and Firestore, the Pub/Sub
emulator, a subscription read back, and a ``sweep`` function that publishes
what a crash between the decision's commit and its publish left pending."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

import localcloud
from functions.review_desk import DecisionRequest, ReviewDesk
from shared import outbox as box
from shared import records as rec
from shared import result_events as events
from shared.settings import Settings
from tests.emulators import PROJECT, free_port, pubsub_emulator
from tests.events.conftest import drain
from tests.events.test_events_emulators import validate
from tests.pipeline.conftest import INCOMING, MODELS, PROCESSED, REPO, function_env
from tests.review.conftest import REVIEWER, ReviewStack, review_env

TOPIC = "review-events"
SUBSCRIPTION = "review-events-all"


@dataclass
class EventStack:
    review_url: str
    crash_url: str  # crashes between the decision's commit and its publish
    sweep_url: str
    pubsub_host: str

    def drain(self, quiet: float = 3.0) -> list[tuple[dict, dict]]:
        return drain(self.pubsub_host, f"projects/{PROJECT}/subscriptions/{SUBSCRIPTION}", quiet)


@pytest.fixture(scope="module")
def with_events(stack: ReviewStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStack]:
    logs = tmp_path_factory.mktemp("review-events")
    with pubsub_emulator(logs) as pubsub_host:
        localcloud.create_topic_and_subscription(pubsub_host, PROJECT, TOPIC, SUBSCRIPTION)
        env = review_env(function_env(stack.storage_url, stack.firestore_host, logs / "model-cache", threshold=0.99))
        env |= {"EVENTS_TOPIC": TOPIC, "PUBSUB_EMULATOR_HOST": pubsub_host, "EVENTS_GRACE_SECONDS": "0"}
        main = REPO / "functions" / "main.py"
        crash_env = env | {"FAILPOINTS": "review_before_publish=crash"}
        procs = [
            localcloud.start_http_function(main, "review", free_port(), logs, env, name="review-events"),
            localcloud.start_http_function(main, "review", free_port(), logs, crash_env, name="review-events-crash"),
            localcloud.start_http_function(main, "sweep", free_port(), logs, env, name="sweep-events"),
        ]
        try:
            for proc in procs:
                localcloud.wait_until(proc, localcloud.http_answers(proc.url or "", ok_only=False), 60)
            yield EventStack(*(p.url or "" for p in procs), pubsub_host)
        finally:
            for proc in procs:
                localcloud.stop(proc)


def decided_id(doc_id: str, version: int) -> str:
    return events.event_id(doc_id, events.DECIDED_TYPE, version)


def check_decided(event: dict, attributes: dict, doc_id: str, record: dict[str, Any]) -> None:
    """A valid decided event that says what the record says."""
    validate(event)
    assert event["type"] == events.DECIDED_TYPE == attributes["type"]
    assert event["data"]["status"] == rec.REVIEWED
    review = event["data"]["review"]
    assert review["decision"] == record["review"]["decision"]
    assert review["final_label"] == record["review"]["final_label"]
    assert review["reviewed_by"] == REVIEWER
    assert event["data"]["destination"]["name"] == record["destination"]["name"]


def test_a_decision_publishes_one_decided_event(stack: ReviewStack, with_events: EventStack) -> None:
    doc_id = stack.item()
    with_events.drain(quiet=1.0)
    response = stack.decide({"id": doc_id, "action": "approve"}, url=with_events.review_url)
    assert response.status_code == 200, response.text
    got = with_events.drain()
    assert [event["id"] for event, _ in got] == [decided_id(doc_id, 2)]
    record = stack.record(doc_id)
    check_decided(*got[0], doc_id, record)
    assert record["review"]["decision"] == rec.APPROVED
    assert box.event_states(record[rec.Field.OUTBOX]) == {decided_id(doc_id, 2): box.SENT}
    assert record[rec.Field.OUTBOX]["state"] == box.SENT
    # the same decision again: unchanged, nothing new published
    again = stack.decide({"id": doc_id, "action": "approve"}, url=with_events.review_url)
    assert again.status_code == 200, again.text
    assert with_events.drain(quiet=1.5) == []


def test_a_crash_between_commit_and_publish_leaves_the_event_for_the_sweep(stack: ReviewStack, with_events: EventStack) -> None:
    doc_id = stack.item()
    with_events.drain(quiet=1.0)
    with pytest.raises(requests.ConnectionError):  # the instance dies after the commit
        stack.decide({"id": doc_id, "action": "reject", "reason": "blurred"}, url=with_events.crash_url)
    record = stack.record(doc_id)
    assert record["status"] == rec.REVIEWED and record["review"]["decision"] == rec.REVIEW_REJECTED
    assert box.event_states(record[rec.Field.OUTBOX]) == {decided_id(doc_id, 2): box.PENDING}
    assert [event["id"] for event in box.pending(record[rec.Field.OUTBOX])] == [decided_id(doc_id, 2)]
    assert with_events.drain(quiet=1.5) == []  # nothing published yet

    swept = requests.post(with_events.sweep_url, json={"min_age": 0}, timeout=120)
    assert swept.status_code == 200, swept.text
    got = with_events.drain()
    assert [event["id"] for event, _ in got] == [decided_id(doc_id, 2)]  # the id staged with the decision
    check_decided(*got[0], doc_id, stack.record(doc_id))
    assert box.event_states(stack.record(doc_id)[rec.Field.OUTBOX]) == {decided_id(doc_id, 2): box.SENT}


def test_approve_then_a_changed_relabel_gives_two_distinct_events(stack: ReviewStack, with_events: EventStack) -> None:
    doc_id = stack.item()
    label = stack.record(doc_id)["label"]
    other = next(name for name in stack.labels if name != label)
    with_events.drain(quiet=1.0)
    first = stack.decide({"id": doc_id, "action": "approve"}, url=with_events.review_url)
    assert first.status_code == 200, first.text
    second = stack.decide({"id": doc_id, "action": "relabel", "label": other, "change": True}, url=with_events.review_url)
    assert second.status_code == 200, second.text

    got = with_events.drain()
    assert [event["id"] for event, _ in got] == [decided_id(doc_id, 2), decided_id(doc_id, 3)]
    assert len({event["id"] for event, _ in got}) == 2
    (approved, _), (relabeled, attributes) = got
    validate(approved)
    assert approved["data"]["review"]["decision"] == rec.APPROVED and approved["data"]["review"]["final_label"] == label
    record = stack.record(doc_id)
    check_decided(relabeled, attributes, doc_id, record)
    assert relabeled["data"]["review"]["decision"] == rec.RELABELED and relabeled["data"]["review"]["final_label"] == other
    assert box.event_states(record[rec.Field.OUTBOX]) == {decided_id(doc_id, 2): box.SENT, decided_id(doc_id, 3): box.SENT}


def test_a_failure_before_the_publish_then_the_same_decision_publishes_it(
    stack: ReviewStack, with_events: EventStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desk core in this process (the wiring's outbox from the settings):
    a failure after the commit (``review_before_publish=error``) leaves the
    event pending; the same decision sent again is answered unchanged and
    publishes it, with the same id."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", with_events.pubsub_host)

    def desk(failpoints: str = "") -> ReviewDesk:
        settings = Settings(
            project=localcloud.PROJECT,
            incoming_bucket=INCOMING,
            processed_bucket=PROCESSED,
            models_bucket=MODELS,
            events_topic=TOPIC,
            failpoints=failpoints,
        )
        return ReviewDesk(settings, stack.storage(), stack.firestore(), lambda: list(stack.labels))

    doc_id = stack.item()
    with_events.drain(quiet=1.0)
    with pytest.raises(ConnectionError):
        desk("review_before_publish=error").decide(DecisionRequest(doc_id, "approve"), REVIEWER)
    assert box.event_states(stack.record(doc_id)[rec.Field.OUTBOX]) == {decided_id(doc_id, 2): box.PENDING}
    assert with_events.drain(quiet=1.5) == []
    result = desk().decide(DecisionRequest(doc_id, "approve"), REVIEWER)
    assert result.unchanged
    got = with_events.drain()
    assert [event["id"] for event, _ in got] == [decided_id(doc_id, 2)]
    check_decided(*got[0], doc_id, stack.record(doc_id))
    assert box.event_states(stack.record(doc_id)[rec.Field.OUTBOX]) == {decided_id(doc_id, 2): box.SENT}
