"""The receiver's model cache: wire-form blobs (models, deltas, bases) kept by SHA-256.

A stream's hello names its model's hash (and its base's); when the cache
holds a blob the receiver does not ask for it, and with all of them it
answers `Ready` at once (on a reconnect, or for a second stream with the
same model). Entries are checked against their hash on every read, so a
damaged file is dropped, not trusted; what a blob means is decided by
whoever loads it.

A video-specific model is close to a copy of its video, so the folder is
private to its user (0700, files 0600) and bounded in total size, not only
in count; `vrecv --no-cache` keeps nothing. A cache that cannot be read or
written (a read-only or full disk) is a warning, never a failed stream: the
receiver carries on without it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vsa.common import bundle as bundle_mod

log = logging.getLogger("vsa.cache")

MAX_ENTRIES = 32
MAX_TOTAL_BYTES = 1 << 30
"""The cache's size cap: the oldest entries go first (a hello may name models of up to 512 MiB)."""
MAX_PARTIALS = 4
"""Cut transfers kept for resuming (each at most a model's size)."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vsa" / "models"


class ModelCache:
    def __init__(self, directory: str | os.PathLike | None = None, max_entries: int = MAX_ENTRIES,
                 max_bytes: int = MAX_TOTAL_BYTES) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.hits = 0
        self.disabled = False
        """Set after an I/O error: the cache then does nothing (one warning said why)."""

    def _path(self, sha256: bytes) -> Path:
        return self.directory / f"{sha256.hex()}.vsam"

    def _give_up(self, what: str, exc: OSError) -> None:
        if not self.disabled:
            log.warning("model cache %s: cannot %s (%s); continuing without a cache", self.directory, what, exc)
        self.disabled = True

    def get(self, sha256: bytes) -> bytes | None:
        """The blob with this hash, or None when absent, damaged or unreadable."""
        if self.disabled:
            return None
        path = self._path(sha256)
        try:
            wire = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._give_up("read", exc)
            return None
        if bundle_mod.sha256(wire) != sha256:
            log.warning("dropping damaged cache entry %s: its bytes do not match its hash", path.name)
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return wire

    def put(self, wire: bytes) -> Path | None:
        """Store a verified blob, then evict the oldest entries beyond the count and size caps.

        Returns its path, or None when it was not stored (larger than the cap, or an I/O error).
        """
        if self.disabled:
            return None
        if len(wire) > self.max_bytes:
            log.warning("not caching a %d-byte model: the cache holds at most %d bytes", len(wire), self.max_bytes)
            return None
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.directory.stat().st_mode & 0o077:
                self.directory.chmod(0o700)  # a folder made by an older vsa, or by hand
            path = self._path(bundle_mod.sha256(wire))
            tmp = path.with_suffix(f".tmp-{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(wire)
            os.replace(tmp, path)
            self._evict(keep=path)
        except OSError as exc:
            self._give_up("write", exc)
            return None
        return path

    def put_partial(self, sha256: bytes, data: bytes) -> None:
        """Keep the first bytes of a blob whose transfer was cut, for the next session to resume from.

        At most `MAX_PARTIALS` are kept (the oldest go); they are checked only
        when the resumed blob is whole, by its hash.
        """
        if self.disabled or not data or len(data) > self.max_bytes:
            return
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.directory / f"{sha256.hex()}.part"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            partials = sorted(self.directory.glob("*.part"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in partials[MAX_PARTIALS:]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            self._give_up("write", exc)

    def take_partial(self, sha256: bytes) -> bytes | None:
        """The kept start of this blob, removed from the cache (a cut resumed transfer is kept again)."""
        if self.disabled:
            return None
        path = self.directory / f"{sha256.hex()}.part"
        try:
            data = path.read_bytes()
            path.unlink(missing_ok=True)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._give_up("read", exc)
            return None
        return data or None

    def _evict(self, keep: Path) -> None:
        entries = sorted(self.directory.glob("*.vsam"), key=lambda p: p.stat().st_mtime, reverse=True)
        total = 0
        for i, entry in enumerate(entries):
            total += entry.stat().st_size
            if entry != keep and (i >= self.max_entries or total > self.max_bytes):
                total -= entry.stat().st_size
                entry.unlink(missing_ok=True)
