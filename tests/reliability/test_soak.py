"""The soak test (tests/reliability/soak.py): uploads of real catalogue
photos mixed with bad inputs and real-world files through the whole local
stack, 10% of events delivered several times, Firestore and Storage cut and
the function killed mid-run; afterwards every object version is in exactly
one place with exactly one finished record and the counters equal the
records.

- CI (``test_soak_short``): 400 uploads, Firestore and Storage cut together
  for 4 s, the function killed once.
- ``pytest --long`` (``test_soak_long``): 10,000 uploads, Firestore cut for
  30 s, Storage cut for 30 s, the function killed twice. Its figures from a
  real run are in docs/reliability.md. ``FASHION_SOAK_UPLOADS`` and
  ``FASHION_SOAK_RATE`` (uploads/s) resize it.

``-s`` prints the figures (time, throughput, latency percentiles, the
timeline of faults).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.conftest import FIRESTORE_PREFERENCE, require_transaction_isolation
from tests.pipeline.test_end_to_end import make_store, require_stack
from tests.reliability import soak

SHORT = soak.Plan(
    uploads=400,
    rate=20.0,
    faults=(soak.Fault("both", at=0.3, seconds=4.0), soak.Fault("kill", at=0.6)),
    settle_timeout=240.0,
)
LONG = soak.Plan(
    uploads=int(os.environ.get("FASHION_SOAK_UPLOADS") or 10_000),
    rate=float(os.environ.get("FASHION_SOAK_RATE") or 12.0),
    faults=(
        soak.Fault("kill", at=0.15),
        soak.Fault("firestore", at=0.3, seconds=30.0),
        soak.Fault("kill", at=0.5),
        soak.Fault("storage", at=0.7, seconds=30.0),
    ),
    settle_timeout=1200.0,
)


@pytest.fixture
def soak_run(tmp_path: Path, tiny_model_dir: Any) -> Iterator[soak.SoakStack]:
    require_stack()
    catalogue = soak.catalogue_images()
    if not catalogue:
        pytest.skip(f"no catalogue photos in {soak.CATALOGUE_DIRS[0]} or {soak.CATALOGUE_DIRS[1]}")
    store = make_store(tmp_path / "store", Path(tiny_model_dir.int8_dir))
    with soak.soak_stack(tmp_path, store, FIRESTORE_PREFERENCE) as stack, pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIRESTORE_EMULATOR_HOST", stack.env["FIRESTORE_EMULATOR_HOST"])  # the tests' own Firestore client
        require_transaction_isolation(stack.env.get("FASHION_FIRESTORE_EMULATOR"))
        yield stack


def _soak(stack: soak.SoakStack, plan: soak.Plan) -> dict[str, Any]:
    real_world = soak.real_world_inputs()
    if not real_world:
        print(f"\nsoak: {soak.REAL_WORLD_DIR} is absent: the odd uploads are corpus cases only")
    mix = soak.Mix(soak.catalogue_images(), real_world)
    figures = soak.account(stack, soak.run(stack, plan, mix))
    print("\nsoak:", soak.summary(figures))
    assert figures["kills"] == sum(1 for f in plan.faults if f.kind == "kill")
    assert figures["retries"] > 0, "the faults made no delivery fail: they were not felt"
    assert figures["kinds"].get("corpus") and figures["kinds"].get("catalogue")
    return figures


def test_soak_short(soak_run: soak.SoakStack) -> None:
    """400 uploads with a 4 s cut of both dependencies and one function kill:
    every version in one place with one finished record, counters equal."""
    _soak(soak_run, SHORT)


@pytest.mark.long
def test_soak_long(soak_run: soak.SoakStack) -> None:
    """10,000 uploads, two 30 s cuts, two function kills (docs/reliability.md)."""
    _soak(soak_run, LONG)
