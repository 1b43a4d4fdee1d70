"""The back-catalogue backfill and re-classification, as Apache Beam batch
pipelines (docs/backfill.md).

One module a job: :mod:`~backfill.source` (the gs:// source, the key-space
shards), :mod:`~backfill.listing` (sharded listing, skipping finished object
versions), :mod:`~backfill.inference` (the pinned model and the RunInference
model handler over the shared LiteRT ``Classifier``), :mod:`~backfill.steps`
(download, preprocess, the processing core), :mod:`~backfill.progress`
(console progress as JSON logs), :mod:`~backfill.runs` (the
``backfill_runs/<id>`` document), :mod:`~backfill.estimate` (``--dry-run``'s
time and cost), :mod:`~backfill.pipeline` (the backfill pipeline and its
runner), :mod:`~backfill.reclassify` (what a candidate model would change,
and ``--apply``), :mod:`~backfill.cli` (``python -m backfill``, what
``fashionctl backfill``/``reclassify`` run).

Needs ``requirements-beam.txt`` (``make venv-beam``: ``.venv-beam/``);
nothing here is imported by the functions, and importing this package loads
no Beam.
"""
