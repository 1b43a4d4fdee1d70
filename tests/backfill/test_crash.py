"""A crash injected at each step of the processing core (the failpoints of
``functions/failpoints.py``: the pipeline's process dies with ``os._exit``,
no cleanup, the lease left held) followed by a rerun: nothing is lost,
nothing is duplicated (one record, one copy, one count per object)."""

from __future__ import annotations

import json

import pytest

from functions.failpoints import CRASH_EXIT_CODE, POINTS
from tests.backfill.conftest import CATALOGUE, BackfillStack, catalogue_images

PER_POINT = 4
#: the processing core's failpoints (the others, review_*, are the review desk's)
CORE_POINTS = tuple(point for point in POINTS if not point.startswith("review_"))


def test_a_crash_at_each_step_then_a_rerun_loses_and_duplicates_nothing(stack: BackfillStack) -> None:
    images = catalogue_images(260)[230:]  # images no other test uploads
    uploaded: dict[str, int] = {}
    before_total = stack.counted_total()
    fast_lease = {"LEASE_SECONDS": "1"}
    assert len(CORE_POINTS) == 6  # after_download ... after_delete, and before_publish (the events outbox)
    for k, point in enumerate(CORE_POINTS):
        prefix = f"crash/{point}/"
        uploaded |= stack.upload(prefix, images[k * PER_POINT : (k + 1) * PER_POINT])
        crashed = stack.run_cli("backfill", f"gs://{CATALOGUE}/{prefix}", env=fast_lease | {"FAILPOINTS": f"{point}=crash"})
        assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr[-3000:]
        assert f"failpoint {point} reached" in crashed.stderr

    rerun = stack.run_cli("backfill", f"gs://{CATALOGUE}/crash/", "--retry-delay", "2", env=fast_lease)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert summary["counts"].get("failed_after_retry", 0) == 0

    records = [r for r in stack.records().values() if r["source"]["name"].startswith("crash/")]
    by_version = {(r["source"]["name"], int(r["source"]["generation"])) for r in records}
    assert by_version == set(uploaded.items())  # one record per object version
    assert len(records) == len(uploaded)
    assert all(r["status"] in {"classified", "needs_review", "rejected"} for r in records), [r["status"] for r in records]
    assert stack.listed(CATALOGUE, "crash/") == []  # every source moved
    # exactly one copy per object in the processed bucket: no second name (with the generation) for any
    stems = {name.rsplit("/", 1)[-1].split(".")[0] for name in uploaded}
    copies = [n for n in stack.processed() if n.rsplit("/", 1)[-1].split(".")[0] in stems]
    assert len(copies) == len(uploaded), copies
    assert sorted(r["destination"]["name"] for r in records) == sorted(copies)
    assert stack.counted_total() - before_total == len(uploaded)  # counted once each
    assert max(r["attempts"] for r in records) >= 2  # the crashed ones were taken over


@pytest.mark.parametrize("point", ["nowhere"])
def test_an_unknown_failpoint_is_refused(stack: BackfillStack, point: str) -> None:
    bad = stack.run_cli("backfill", f"gs://{CATALOGUE}/crash/", "--dry-run", env={"FAILPOINTS": f"{point}=crash"})
    assert bad.returncode == 2 and "failpoint" in bad.stderr
