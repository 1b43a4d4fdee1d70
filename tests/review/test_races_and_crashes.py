"""Decisions under concurrency and failure, on the emulators: identical and
conflicting decisions from threads hitting the HTTP function at once; a
decision racing a sweep and a redelivery of the same upload; an instance
crashing between the steps of a move, then a retry finishing the job."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import requests

from functions.review_desk import DecisionRequest, ReviewError
from shared import records as rec
from shared.labels import slugify
from tests.cloudevents import post_storage_event
from tests.review.conftest import REVIEWER, ReviewStack
from tests.review.test_decisions import review_counts


def names_for(stack: ReviewStack, doc_id: str) -> set[str]:
    """The processed bucket's names that hold this record's file."""
    base = stack.record(doc_id)["source"]["name"]
    return {
        name for name in stack.processed() if name.endswith("/" + base) or name.rpartition("/")[2].startswith(base[:-4] + ".")
    }


def expected_name(stack: ReviewStack, doc_id: str, review: dict[str, Any]) -> str:
    base = stack.record(doc_id)["source"]["name"]
    if review["decision"] == rec.REVIEW_REJECTED:
        return f"rejected/{base}"
    return f"{slugify(review['final_label'])}/{base}"


def test_concurrent_identical_decisions_move_once_and_count_once(stack: ReviewStack):
    doc_id = stack.item()
    counts = review_counts(stack)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: stack.decide({"id": doc_id, "action": "approve"}), range(8)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    record = stack.record(doc_id)
    assert record["status"] == rec.REVIEWED and record.get("review_pending") is None
    assert names_for(stack, doc_id) == {expected_name(stack, doc_id, record["review"])}
    assert review_counts(stack).get(rec.APPROVED, 0) == counts.get(rec.APPROVED, 0) + 1
    assert sum(1 for r in responses if not r.json()["results"][0]["unchanged"]) >= 1


def test_concurrent_conflicting_decisions_one_wins_the_others_get_409(stack: ReviewStack):
    doc_id = stack.item()
    label = stack.record(doc_id)["label"]
    others = [x for x in stack.labels if x != label][:2]
    decisions = [
        {"id": doc_id, "action": "approve"},
        {"id": doc_id, "action": "relabel", "label": others[0]},
        {"id": doc_id, "action": "relabel", "label": others[1]},
        {"id": doc_id, "action": "reject", "reason": "no"},
    ] * 2
    counts = review_counts(stack)
    barrier = threading.Barrier(len(decisions))

    def send(decision: dict[str, Any]) -> requests.Response:
        barrier.wait()
        return stack.decide(decision)

    with ThreadPoolExecutor(len(decisions)) as pool:
        responses = list(pool.map(send, decisions))
    assert {r.status_code for r in responses} <= {200, 409}, [r.text for r in responses]
    record = stack.record(doc_id)
    review = record["review"]
    winners = [d for d, r in zip(decisions, responses, strict=True) if r.status_code == 200]
    assert winners, "nobody won"
    for response in responses:
        if response.status_code == 200:
            assert response.json()["results"][0]["review"]["decision"] == review["decision"]
            assert response.json()["results"][0]["review"]["final_label"] == review["final_label"]
        else:
            assert response.json()["error"]["code"] in ("already_decided", "decision_in_progress")
    assert names_for(stack, doc_id) == {expected_name(stack, doc_id, review)}
    after = review_counts(stack)
    assert sum(after.values()) == sum(counts.values()) + 1


def redeliver(stack: ReviewStack, doc_id: str) -> requests.Response:
    source = stack.record(doc_id)["source"]
    return post_storage_event(
        stack.classify_url,
        bucket=source["bucket"],
        name=source["name"],
        generation=source["generation"],
        content_type="image/jpeg",
        size=source["size"],
    )


@pytest.mark.parametrize("point", ["review_after_copy", "review_before_delete"])
def test_a_decision_racing_a_sweep_and_a_redelivery(stack: ReviewStack, point: str):
    """The decision hangs between two steps of its move while the same upload
    is redelivered and a sweep runs; neither undoes nor re-files anything,
    and the decision then finishes."""
    doc_id = stack.item()
    before = stack.record(doc_id)
    desk = stack.desk(f"{point}=hang:3")
    done: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: done.setdefault("result", desk.decide(DecisionRequest(doc_id, "reject", reason="race"), REVIEWER))
    )
    thread.start()
    try:
        redelivered = redeliver(stack, doc_id)
        swept = requests.post(stack.sweep_url, json={"min_age": 0}, timeout=120)
    finally:
        thread.join(60)
    assert redelivered.status_code < 300, redelivered.text
    assert swept.status_code == 200, swept.text
    record = stack.record(doc_id)
    assert record["status"] == rec.REVIEWED and record["review"]["decision"] == rec.REVIEW_REJECTED
    assert record["attempts"] == before["attempts"] and record["label"] == before["label"]
    assert names_for(stack, doc_id) == {f"rejected/{before['source']['name']}"}
    assert redeliver(stack, doc_id).status_code < 300  # after the decision too: nothing re-filed
    assert requests.post(stack.sweep_url, json={"min_age": 0}, timeout=120).status_code == 200
    assert stack.record(doc_id) == record
    assert names_for(stack, doc_id) == {f"rejected/{before['source']['name']}"}


def test_an_instance_crashing_after_its_copy_then_a_retry_finishes(stack: ReviewStack):
    doc_id = stack.item()
    before = stack.record(doc_id)
    counts = review_counts(stack)
    with pytest.raises(requests.ConnectionError):  # the instance dies in the middle of the request
        stack.decide({"id": doc_id, "action": "approve"}, url=stack.crash_url)
    target = f"{slugify(before['label'])}/{before['source']['name']}"
    halfway = stack.record(doc_id)
    assert halfway["status"] == rec.NEEDS_REVIEW and halfway["review_pending"]["destination"] is None
    assert names_for(stack, doc_id) == {target, before["destination"]["name"]}  # copied, not yet deleted
    retried = stack.decide({"id": doc_id, "action": "approve"})
    assert retried.status_code == 200, retried.text
    assert names_for(stack, doc_id) == {target}
    assert stack.record(doc_id)["destination"]["name"] == target
    assert review_counts(stack).get(rec.APPROVED, 0) == counts.get(rec.APPROVED, 0) + 1


@pytest.mark.parametrize("point", ["review_after_copy", "review_before_delete", "review_after_delete"])
def test_a_failure_between_any_two_steps_then_a_retry_finishes(stack: ReviewStack, point: str):
    doc_id = stack.item()
    before = stack.record(doc_id)
    other = next(x for x in stack.labels if x != before["label"])
    request = DecisionRequest(doc_id, "relabel", label=other)
    counts = review_counts(stack)
    with pytest.raises(ConnectionError):
        stack.desk(f"{point}=error").decide(request, REVIEWER)
    assert stack.record(doc_id)["status"] == rec.NEEDS_REVIEW
    different = stack.decide({"id": doc_id, "action": "approve"})
    assert different.status_code == 409 and different.json()["error"]["code"] == "decision_in_progress"
    called: list[rec.Classification] = []
    result = stack.desk().decide(request, REVIEWER, called.append)
    assert result.record.status == rec.REVIEWED and [r.id for r in called] == [doc_id]
    target = f"{slugify(other)}/{before['source']['name']}"
    assert names_for(stack, doc_id) == {target}
    assert review_counts(stack).get(rec.RELABELED, 0) == counts.get(rec.RELABELED, 0) + 1
    again = stack.desk().decide(request, REVIEWER, called.append)
    assert again.unchanged and len(called) == 1  # the hook runs once per committed decision


def test_a_review_copy_replaced_by_a_newer_upload_is_a_conflict_and_nothing_moves(stack: ReviewStack):
    """A newer upload of the same name replaced the review copy (the newest
    upload owns a name): the older item's decision is refused, and the newer
    upload's file stays where it is."""
    doc_id = stack.item(name="replaced-later.jpg", seed=1)
    newer = stack.item(name="replaced-later.jpg", seed=1)  # the same photo again: the same label and review name
    first, second = stack.record(doc_id), stack.record(newer)
    assert first["destination"] == second["destination"]
    assert stack.processed()[first["destination"]["name"]].metadata["classification-id"] == newer
    snapshot = {n: b.md5_hash for n, b in stack.processed().items()}
    refused = stack.decide({"id": doc_id, "action": "approve"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "file_gone"
    assert {n: b.md5_hash for n, b in stack.processed().items()} == snapshot
    assert stack.record(doc_id).get("review_pending") is None and stack.record(doc_id)["status"] == rec.NEEDS_REVIEW
    assert stack.decide({"id": newer, "action": "approve"}).status_code == 200


def test_an_abandoned_decision_is_finished_then_changed(stack: ReviewStack):
    """A decision interrupted and never retried blocks other decisions only
    for LEASE_SECONDS; after that a change finishes it first, then replaces it."""
    doc_id = stack.item()
    before = stack.record(doc_id)
    with pytest.raises(ConnectionError):
        stack.desk("review_before_delete=error").decide(DecisionRequest(doc_id, "reject", reason="dark"), REVIEWER)
    change = DecisionRequest(doc_id, "approve", change=True)
    with pytest.raises(ReviewError) as refused:
        stack.desk().decide(change, REVIEWER)  # the interrupted one is recent: still in progress
    assert refused.value.code == "decision_in_progress"
    later = stack.desk()
    later.now = lambda: rec.utcnow() + timedelta(seconds=later.settings.lease_seconds + 1)
    result = later.decide(change, REVIEWER)
    review = result.record.review
    assert review["decision"] == rec.APPROVED and [p["decision"] for p in review["previous"]] == [rec.REVIEW_REJECTED]
    assert names_for(stack, doc_id) == {f"{slugify(before['label'])}/{before['source']['name']}"}
