"""The receiver's model cache: wire-form blobs (models, deltas, bases) kept by SHA-256.

A stream's hello names its model's hash (and its base's); when the cache
holds a blob the receiver does not ask for it, and with all of them it
answers `Ready` at once (on a reconnect, or for a second stream with the
same model). Entries are checked against their hash on every read, so a
damaged file is dropped, not trusted; what a blob means is decided by
whoever loads it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vsa.common import bundle as bundle_mod

log = logging.getLogger("vsa.cache")

MAX_ENTRIES = 32


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vsa" / "models"


class ModelCache:
    def __init__(self, directory: str | os.PathLike | None = None, max_entries: int = MAX_ENTRIES) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.max_entries = max_entries
        self.hits = 0

    def _path(self, sha256: bytes) -> Path:
        return self.directory / f"{sha256.hex()}.vsam"

    def get(self, sha256: bytes) -> bytes | None:
        """The blob with this hash, or None when absent or damaged."""
        path = self._path(sha256)
        try:
            wire = path.read_bytes()
        except OSError:
            return None
        if bundle_mod.sha256(wire) != sha256:
            log.warning("dropping damaged cache entry %s: its bytes do not match its hash", path.name)
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return wire

    def put(self, wire: bytes) -> Path:
        """Store a verified blob; old entries beyond ``max_entries`` are removed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(bundle_mod.sha256(wire))
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_bytes(wire)
        os.replace(tmp, path)
        entries = sorted(self.directory.glob("*.vsam"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[self.max_entries :]:
            old.unlink(missing_ok=True)
        return path
