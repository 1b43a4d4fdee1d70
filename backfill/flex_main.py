"""The Flex Template launcher's entry (``FLEX_TEMPLATE_PYTHON_PY_FILE``):
Dataflow runs this file with the template's parameters as ``--name=value``.

Parameters (declared in ``backfill/flex_metadata.json``): ``source``
(gs://BUCKET[/PREFIX]), ``processed_bucket``, ``models_bucket``,
``incoming_bucket`` (the settings the core needs), optional ``model``,
``limit``, ``keep_source``, ``dry_run``, ``stats_shards``,
``firestore_database``; every other argument (``--project``, ``--region``,
``--temp_location``, ``--sdk_container_image``, ``--max_num_workers``,
``--service_account_email``...) is passed to Beam. The job is submitted and
this program exits: it does not wait (a Flex Template launcher must not).
"""

from __future__ import annotations

import argparse
import json
import sys

from shared.logs import configure_logging
from shared.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flex_main")
    parser.add_argument("--source", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--processed_bucket", required=True)
    parser.add_argument("--models_bucket", required=True)
    parser.add_argument("--incoming_bucket", required=True)
    parser.add_argument("--firestore_database", default="(default)")
    parser.add_argument("--stats_shards", default="50")
    parser.add_argument("--model")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--keep_source", default="false")
    parser.add_argument("--dry_run", default="false")
    known, beam_args = parser.parse_known_args(argv)
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": known.project,
            "INCOMING_BUCKET": known.incoming_bucket,
            "PROCESSED_BUCKET": known.processed_bucket,
            "MODELS_BUCKET": known.models_bucket,
            "FIRESTORE_DATABASE": known.firestore_database,
            "STATS_SHARDS": known.stats_shards,
        }
    )
    configure_logging(settings.log_level)
    from backfill.pipeline import DATAFLOW, BackfillOptions, run
    from backfill.source import Source

    options = BackfillOptions(
        source=Source.parse(known.source),
        dry_run=known.dry_run.lower() == "true",
        limit=known.limit,
        model=known.model,
        keep_source=known.keep_source.lower() == "true",
        runner=DATAFLOW,
        beam_args=(f"--project={known.project}", *beam_args),
    )
    print(json.dumps(run(settings, options), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
