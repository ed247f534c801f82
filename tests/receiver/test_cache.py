"""The model cache: private, bounded in size, and never the reason a stream fails."""

from __future__ import annotations

import logging
import os
import stat

from vsa.common import bundle as bundle_mod
from vsa.receiver.cache import ModelCache


def _blob(n: int, fill: int) -> bytes:
    return bytes([fill]) * n


def test_the_cache_is_private_to_its_user(tmp_path):
    cache = ModelCache(tmp_path / "models")
    path = cache.put(_blob(100, 1))
    assert stat.S_IMODE(os.stat(tmp_path / "models").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # A folder left open by an older vsa is closed on the next write.
    os.chmod(tmp_path / "models", 0o755)
    cache.put(_blob(100, 2))
    assert stat.S_IMODE(os.stat(tmp_path / "models").st_mode) == 0o700


def test_the_cache_is_bounded_in_bytes_oldest_out_first(tmp_path):
    cache = ModelCache(tmp_path, max_bytes=250)
    blobs = [_blob(100, i) for i in range(3)]
    for i, blob in enumerate(blobs):
        path = cache.put(blob)
        os.utime(path, (1000 + i, 1000 + i))  # distinct ages, whatever the file system's clock resolution
    kept = {p.name for p in tmp_path.glob("*.vsam")}
    assert kept == {f"{bundle_mod.sha256(b).hex()}.vsam" for b in blobs[1:]}
    assert cache.get(bundle_mod.sha256(blobs[0])) is None and cache.get(bundle_mod.sha256(blobs[2])) == blobs[2]
    assert cache.put(_blob(300, 9)) is None  # larger than the whole cache: not stored, nothing evicted for it
    assert len(list(tmp_path.glob("*.vsam"))) == 2


def test_an_unwritable_cache_is_one_warning_and_no_cache(tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"")  # the cache folder's path is a file: every write fails with an OSError
    cache = ModelCache(blocked / "models")
    with caplog.at_level(logging.WARNING, logger="vsa.cache"):
        assert cache.put(_blob(10, 1)) is None
        assert cache.put(_blob(10, 2)) is None
        assert cache.get(bundle_mod.sha256(_blob(10, 1))) is None
    warnings = [r for r in caplog.records if "continuing without a cache" in r.getMessage()]
    assert len(warnings) == 1 and cache.disabled
