"""Progress on the console while a run goes: objects done, images/s, ETA,
as one structured JSON log line (``shared.logs``) every few seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("backfill.progress")


class Progress:
    """Counts finished objects in this process and logs
    ``{"done", "total", "images_per_second", "eta_seconds"}`` at most every
    ``every_seconds`` (and at the last object). Thread-safe. With several
    workers each logs its own share; ``total`` is the whole run's."""

    def __init__(self, every_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._every = every_seconds
        self._started: float | None = None
        self._last = float("-inf")
        self.done = 0

    def tick(self, total: int, stage: str = "backfill") -> dict | None:
        """One more object finished; returns the figures when it logged them."""
        with self._lock:
            now = self._clock()
            if self._started is None:
                self._started = now
            self.done += 1
            if now - self._last < self._every and self.done < total:
                return None
            self._last = now
            elapsed = max(now - self._started, 1e-9)
            rate = self.done / elapsed
            left = max(total - self.done, 0)
            figures = {
                "stage": stage,
                "done": self.done,
                "total": total,
                "images_per_second": round(rate, 2),
                "eta_seconds": round(left / rate, 1) if rate > 0 else None,
            }
        log.info(
            "%s: %d/%d done, %.1f images/s, ETA %s s",
            stage,
            figures["done"],
            total,
            figures["images_per_second"],
            figures["eta_seconds"],
            extra=figures,
        )
        return figures


#: this worker process's progress (the DoFns of one process share it)
PROGRESS = Progress()
