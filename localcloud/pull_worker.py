"""The streaming-pull machinery the local Eventarc bridge
(``localcloud/bridge.py``) and the events push (``localcloud/event_push.py``)
share: a stop flag, a lock over the counters, the streaming pull on a small
thread pool, a callback that nacks a message its handling failed on
unexpectedly, and the process's main loop (:meth:`PullWorker.serve`). A
subclass supplies only ``_handle`` (what to do with one message) and its
``start``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class PullWorker:
    """A Pub/Sub streaming-pull consumer: :meth:`handle` is the callback,
    :meth:`request_stop`/:meth:`stop`/:meth:`wait` its lifecycle, ``stats``
    its counters (under ``_lock``)."""

    #: the subclass's logger and what it says when handling a message fails unexpectedly
    log: ClassVar[logging.Logger] = logging.getLogger("localcloud.pull_worker")
    unexpected_error: ClassVar[str] = "unexpected error handling a message"
    #: what the log says when the worker has stopped (with its counters)
    stopped: ClassVar[str] = "stopped"

    stats: Counter = field(default_factory=Counter, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _future: Any = field(default=None, init=False)
    _subscriber: Any = field(default=None, init=False)

    def handle(self, message: Any) -> None:
        """The streaming-pull callback: :meth:`_handle` acks or nacks; an
        unexpected error nacks (the library would swallow it and hold the lease)."""
        try:
            self._handle(message)
        except Exception:
            self.log.exception(self.unexpected_error, extra={"message_id": message.message_id})
            message.nack()

    def _handle(self, message: Any) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Start taking messages (a subclass opens its source here, e.g. with :meth:`_subscribe`)."""
        raise NotImplementedError

    def _count(self, *what: str) -> None:
        """Add one to each counter named (thread-safe)."""
        with self._lock:
            for name in what:
                self.stats[name] += 1

    def _subscribe(self, pubsub_host: str, project: str, subscription: str, *, workers: int, lease: int, threads: str) -> str:
        """Open the streaming pull on ``subscription``: at most ``workers``
        messages at once (at least 1), each handled on a thread named
        ``threads``-N and leased up to ``lease`` seconds. Returns the
        subscription's path."""
        from google.cloud import pubsub_v1
        from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

        from localcloud.clients import subscriber_client

        self._subscriber = subscriber_client(pubsub_host)
        path = self._subscriber.subscription_path(project, subscription)
        workers = max(1, workers)
        self._future = self._subscriber.subscribe(
            path,
            self.handle,
            flow_control=pubsub_v1.types.FlowControl(max_messages=workers, max_lease_duration=lease),
            scheduler=ThreadScheduler(executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix=threads)),
        )
        return path

    def request_stop(self) -> None:
        """Ask :meth:`wait` to return (safe in a signal handler)."""
        self._stop.set()

    def stop(self) -> None:
        """End the streaming pull and close the subscriber."""
        self._stop.set()
        if self._future is not None:
            self._future.cancel()
            try:
                self._future.result(timeout=10)
            except Exception:  # cancelled, or the stream had failed: either way it is over
                self.log.debug("streaming pull ended", exc_info=True)
            self._future = None
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None

    def wait(self) -> None:
        """Block until :meth:`stop` or the streaming pull fails (raises what ended it)."""
        while not self._stop.wait(0.5):
            if self._future is not None and self._future.done():
                self._future.result()

    def serve(self) -> int:
        """A process's main loop: start, run until SIGTERM or SIGINT, stop.
        Returns 0, or 1 when the streaming pull failed for good."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        self.start()
        try:
            self.wait()
        except Exception:  # the streaming pull failed for good (emulator gone): report and exit non-zero
            self.log.exception("the streaming pull failed")
            return 1
        finally:
            self.stop()
            self.log.info(self.stopped, extra={"stats": dict(self.stats)})
        return 0


def configure_process_logging(level: str) -> None:
    """JSON logs on stdout at ``level``; the Google libraries' at WARNING or above."""
    from shared.logs import configure_logging

    configure_logging(level, sys.stdout)
    logging.getLogger("google").setLevel(max(logging.WARNING, logging.getLogger().level))
