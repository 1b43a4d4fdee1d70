"""Small measuring helpers: percentiles, timed loops, process memory and CPU."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Latency:
    """Latency figures of one measured loop, in milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    mean: float
    images_per_s: float

    @classmethod
    def from_samples(cls, seconds: Iterable[float], images_per_call: int = 1) -> Latency:
        values = np.asarray(list(seconds), dtype=np.float64) * 1000.0
        if values.size == 0:
            raise ValueError("no samples")
        total = values.sum() / 1000.0
        return cls(
            count=int(values.size),
            p50=round(float(np.percentile(values, 50)), 3),
            p95=round(float(np.percentile(values, 95)), 3),
            p99=round(float(np.percentile(values, 99)), 3),
            mean=round(float(values.mean()), 3),
            images_per_s=round(values.size * images_per_call / total, 1) if total > 0 else 0.0,
        )

    def to_dict(self) -> dict[str, float]:
        return {
            "count": self.count,
            "p50_ms": self.p50,
            "p95_ms": self.p95,
            "p99_ms": self.p99,
            "mean_ms": self.mean,
            "images_per_s": self.images_per_s,
        }


def usable_cores() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def time_calls(fn: Callable[[], object], iterations: int, warmup: int) -> list[float]:
    """Call ``fn`` ``warmup`` times unmeasured, then ``iterations`` times; seconds per call."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def time_interleaved(fns: dict[str, Callable[[], object]], iterations: int, warmup: int) -> dict[str, list[float]]:
    """Call every function of ``fns`` once per round, ``warmup`` rounds
    unmeasured then ``iterations`` measured, the order reversed every other
    round; seconds per call, by name. Load from other processes falls on all
    of them alike, so their ratio holds on a busy machine, where two loops
    measured one after the other compare two different loads."""
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for k in range(warmup + iterations):
        for name in names if k % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            if k >= warmup:
                samples[name].append(time.perf_counter() - start)
    return samples


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    return round(_status_kb(pid, "VmHWM") / 1024, 1)


def children(pid: int) -> list[int]:
    """Descendants of ``pid`` (from /proc), depth first."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for kid in kids:
            found.append(kid)
            found.extend(children(kid))
    return found


def tree(pid: int) -> list[int]:
    """A process and its descendants."""
    return [pid, *children(pid)]


def tree_pss_mb(pid: int) -> float:
    """Summed PSS of a process and its descendants, in MB: what they really hold."""
    return sum(pss_mb(p) for p in tree(pid))


def pss_mb(pid: int) -> float:
    """Proportional set size (shared pages divided among their sharers), in MB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


class PeakMemory:
    """Samples the summed PSS of a process tree on a thread: what the
    instance really holds (a forked worker shares most pages with its master,
    so summing their RSS counts those pages twice)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_pss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> float:
        total = tree_pss_mb(self.pid)
        self.peak_pss_mb = max(self.peak_pss_mb, total)
        return total

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (live ones), in seconds."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total / _CLOCK_TICKS
