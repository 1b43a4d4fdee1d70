"""``python -m fashionctl``."""

import sys

from fashionctl.cli import main

sys.exit(main())
