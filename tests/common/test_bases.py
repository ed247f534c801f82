"""The base shipped with vsa: pinned by hash, refused when its bytes differ, and better than bicubic."""

import shutil

import pytest

from vsa.common import bases
from vsa.common import bundle as bundle_mod
from vsa.common.bundle import BundleError


def test_the_shipped_base_matches_its_pinned_hash_and_is_small():
    asset = bases.BASES[bases.DEFAULT_BASE]
    wire, bundle = bases.load_base()
    assert bundle_mod.sha256(wire).hex() == asset.sha256
    assert bundle.kind == "sr" and bundle.base_wire is None
    assert asset.path.stat().st_size <= 1 << 20  # at most 1 MiB in the package
    assert bases.builtin_wire(bytes.fromhex(asset.sha256)) == wire
    assert bases.builtin_wire(b"\x00" * 32) is None


def test_a_base_whose_bytes_do_not_match_its_hash_is_refused(tmp_path, monkeypatch):
    asset = bases.BASES[bases.DEFAULT_BASE]
    tampered = tmp_path / asset.file
    shutil.copy(asset.path, tampered)
    data = bytearray(tampered.read_bytes())
    data[-20] ^= 0x40  # one flipped bit in the weights
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(bases, "ASSETS", tmp_path)
    monkeypatch.setattr(bases.BaseAsset, "path", property(lambda self: tmp_path / self.file))
    with pytest.raises(BundleError, match="does not match its pinned SHA-256"):
        bases.load_base()
    with pytest.raises(BundleError, match="reinstall vsa"):
        bases.builtin_wire(bytes.fromhex(asset.sha256))
