"""``python -m backfill``: see :mod:`backfill.cli`."""

import sys

from backfill.cli import main

sys.exit(main())
