"""The receiver's model cache: wire-form models kept by SHA-256.

A stream's hello names its model's hash; when the cache holds that model
the receiver answers `Ready` at once and the transfer is skipped (on a
reconnect, or for a second stream with the same model). Entries are
checked against their hash on every read, so a damaged file is dropped,
not trusted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vsa.common import bundle as bundle_mod
from vsa.common.bundle import Bundle

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

    def get(self, sha256: bytes) -> Bundle | None:
        """The model with this hash, or None when absent or damaged."""
        path = self._path(sha256)
        try:
            wire = path.read_bytes()
        except OSError:
            return None
        try:
            bundle = bundle_mod.from_wire(wire, sha256)
        except bundle_mod.BundleError as exc:
            log.warning("dropping damaged cache entry %s: %s", path.name, exc)
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return bundle

    def put(self, wire: bytes) -> Path:
        """Store a verified wire-form model; old entries beyond ``max_entries`` are removed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(bundle_mod.sha256(wire))
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_bytes(wire)
        os.replace(tmp, path)
        entries = sorted(self.directory.glob("*.vsam"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[self.max_entries :]:
            old.unlink(missing_ok=True)
        return path
