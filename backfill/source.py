"""The backfill's source (``gs://BUCKET[/PREFIX]``) and its key-space shards.

Pure logic, no client: the listing is split into contiguous ranges of object
names, ``[start, end)``, each listed by one worker with the Cloud Storage
``startOffset``/``endOffset`` list parameters, so no worker lists everything.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

#: the characters shard boundaries are cut at, in byte order (object names
#: sort by their UTF-8 bytes); a name starting with any other character
#: still falls in exactly one shard, since the shards cover the whole space
ALPHABET = "".join(sorted(string.digits + string.ascii_uppercase + string.ascii_lowercase))


class SourceError(ValueError):
    """The source is not a ``gs://BUCKET[/PREFIX]`` URI."""


@dataclass(frozen=True)
class Source:
    """A bucket and an object name prefix ("" for the whole bucket)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, uri: str) -> Source:
        """``gs://BUCKET[/PREFIX]`` -> Source. Raises SourceError."""
        if not uri.startswith("gs://"):
            raise SourceError(f"{uri!r}: expected gs://BUCKET[/PREFIX]")
        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        if not bucket or any(c in bucket for c in " *?[]#"):
            raise SourceError(f"{uri!r}: no bucket name")
        return cls(bucket, prefix)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class Shard:
    """Object names ``n`` with ``prefix <= n``, ``start <= n < end`` (None: unbounded)."""

    start: str | None
    end: str | None


def shards(prefix: str, depth: int = 1) -> list[Shard]:
    """The key space under ``prefix`` cut at ``prefix + c`` for every
    ``c`` of :data:`ALPHABET` (``depth`` characters deep: 63 shards at depth
    1, 3,907 at depth 2). Contiguous and covering: every name under
    ``prefix`` falls in exactly one shard. Raises ValueError for depth < 0."""
    if depth < 0:
        raise ValueError("depth must be 0 or more")
    cuts = [""]
    for _ in range(depth):
        cuts = [cut + c for cut in cuts for c in ALPHABET]
    bounds = [prefix + cut for cut in cuts if cut]
    edges: list[str | None] = [None, *bounds, None]
    return [Shard(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
