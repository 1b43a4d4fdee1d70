"""A TCP proxy between the function and one emulator that a test can cut and
restore: how the fault-injection tests "stop" Firestore or Cloud Storage.

Why a proxy rather than stopping the emulator process:

- Killing the emulator and starting it again loses its state: the Firestore
  emulator and fake-gcs-server (memory backend, as ``fashionctl up`` runs
  it) keep everything in memory. In the cloud an outage does not lose the
  stored data either, so what must be modelled is "unreachable for a while".
- SIGSTOP leaves the port accepting connections that never answer: every
  call then waits out its timeout (20 s in the core), which models a hung
  server, not a stopped one, and makes each case slow.
- :meth:`TcpProxy.cut` is what the function sees when the process behind a
  port dies: every open connection is reset (RST) and new ones are refused
  (the listening socket is closed). :meth:`TcpProxy.restore` listens again
  on the same port, and the emulator behind it still holds its data.

It is a plain byte pump, so it carries HTTP/1.1 (fake-gcs-server) and
HTTP/2 gRPC (the Firestore emulator) alike; the tests' own clients talk to
the emulators directly, past the proxy.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

HOST = "127.0.0.1"


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = listen_port
        self.cuts = 0
        self._listen()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def up(self) -> bool:
        return self._listener is not None

    # -- control -----------------------------------------------------------

    def cut(self) -> None:
        """The dependency goes down: refuse new connections, reset open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
            self.cuts += 1
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in connections:
            _reset(sock)

    def restore(self) -> None:
        """The dependency is back, on the same port, with its data."""
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.cut()

    # -- plumbing ----------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name=f"proxy-{self.port}").start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _reset(client)
                    _reset(upstream)
                    return
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0), as the kernel does for a process that died;
    the shutdown first wakes a pump thread blocked reading it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
