"""Pure logic of the backfill: the key-space shards, the estimate, the progress figures."""

from __future__ import annotations

import pytest

from backfill.estimate import estimate, workers_needed
from backfill.progress import Progress
from backfill.source import Shard, Source, SourceError, shards


def covering(name: str, cuts: list[Shard]) -> list[Shard]:
    return [s for s in cuts if (s.start is None or s.start <= name) and (s.end is None or name < s.end)]


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_shards_cover_every_name_exactly_once(depth: int) -> None:
    cuts = shards("photos/", depth)
    assert len(cuts) == {0: 1, 1: 63, 2: 62 * 62 + 1}[depth]
    for name in [
        "photos/",
        "photos/0",
        "photos/10006.jpg",
        "photos/zz",
        "photos/~tilde",
        "photos/ä.jpg",
        "photos/A/B",
        "photos/-x",
    ]:
        assert len(covering(name, cuts)) == 1, name


def test_source_parses_gs_uris() -> None:
    assert Source.parse("gs://bucket") == Source("bucket", "")
    assert Source.parse("gs://bucket/a/b/") == Source("bucket", "a/b/")
    for bad in ["s3://bucket", "gs://", "bucket/x"]:
        with pytest.raises(SourceError):
            Source.parse(bad)


def test_estimate_is_bound_by_the_slowest_of_workers_collection_and_shards() -> None:
    one = estimate(1_000_000, workers=1, per_worker_objects_per_second=20)
    assert one.bound_by == "workers" and one.objects_per_second == 20 and one.seconds == 50_000
    many = estimate(1_000_000, workers=100, per_worker_objects_per_second=20, stats_shards=50)
    assert many.bound_by == "counter shards" and many.objects_per_second == 50
    wide = estimate(1_000_000, workers=100, per_worker_objects_per_second=20, stats_shards=1000)
    assert wide.bound_by == "collection" and wide.objects_per_second == pytest.approx(500 / 3, rel=1e-3)
    assert many.firestore_writes == 4_000_000 and many.cost_usd["total"] > 0
    assert workers_needed(166, 20) == 9
    with pytest.raises(ValueError):
        estimate(-1)


def test_progress_reports_rate_and_eta() -> None:
    now = [0.0]
    progress = Progress(every_seconds=5, clock=lambda: now[0])
    assert progress.tick(10) is not None  # the first one logs
    now[0] = 2.0
    assert progress.tick(10) is None  # within 5 s: quiet
    now[0] = 6.0
    figures = progress.tick(10)
    assert figures is not None and figures["done"] == 3 and figures["images_per_second"] == 0.5
    assert figures["eta_seconds"] == 14.0
