"""The load generator: wrk (Debian package ``wrk``), closed loop, N
connections each sending the next request when the last one answered."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

_SCRIPT = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f, "max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

BOUNDARY = "benchboundary7d1e"


def multipart_body(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """One file as multipart/form-data; returns (body, content type)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def available() -> str | None:
    """The reason wrk cannot run, or None."""
    return None if shutil.which("wrk") else "wrk is not installed (Debian package wrk; `make bench` installs it)"


def run(url: str, body: bytes, content_type: str, *, connections: int, seconds: float, core: int | None) -> dict[str, Any]:
    """Load ``url`` for ``seconds`` with ``connections`` concurrent connections."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script, payload = Path(tmp) / "post.lua", Path(tmp) / "body"
        script.write_text(_SCRIPT)
        payload.write_bytes(body)
        threads = min(connections, 2)
        argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s", "--timeout", "30s"]
        argv += ["-s", str(script), url]
        if core is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(core), *argv]
        env = {"BENCH_BODY": str(payload), "BENCH_CONTENT_TYPE": content_type, "PATH": "/usr/bin:/bin"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    duration = raw["duration_us"] / 1e6
    errors = sum(raw["errors"].values())
    return {
        "connections": connections,
        "requests": raw["requests"],
        "errors": errors,
        "requests_per_s": round(raw["requests"] / duration, 1) if duration else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p95_ms": round(raw["p95_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
    }
