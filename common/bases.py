"""Base models that ship with vsa, known to both ends by their SHA-256.

A base is a generic model (`vsa pretrain`) that works on video it has never
seen. Because every vsa install carries the same bytes, a stream that uses
a base names it by hash and never transfers it; a model fine-tuned from a
base (`vsa train --base`) travels as a small delta against it.

Each shipped base is pinned here by the SHA-256 of its wire form: an asset
whose bytes do not match is refused, never used (a damaged install must not
silently decode every stream wrongly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import bundle as bundle_mod
from .assets import ASSETS
from .bundle import Bundle, BundleError


@dataclass(frozen=True)
class BaseAsset:
    name: str
    file: str
    sha256: str
    """Hex SHA-256 of the file: the wire form both ends name the base by."""

    @property
    def path(self) -> Path:
        return ASSETS / self.file


BASES: dict[str, BaseAsset] = {
    # Rebuilt by `tools/reproduce_base.sh` (README, "The base model"); trained on the clips in assets/CREDITS.md.
    "sr": BaseAsset("sr", "base-sr.vsam", "2302f4ecad60c99a2a834e0b35b904278aae4ff5397cab9735ff48e02cf3dcf1"),
}
DEFAULT_BASE = "sr"


def read_asset(asset: BaseAsset) -> bytes:
    """The asset's bytes, checked against its pinned hash."""
    try:
        wire = asset.path.read_bytes()
    except OSError as exc:
        raise BundleError(f"the {asset.name} base model is missing from this install ({asset.path}): {exc}") from None
    if bundle_mod.sha256(wire).hex() != asset.sha256:
        raise BundleError(f"the {asset.name} base model at {asset.path} does not match its pinned SHA-256 "
                          f"({bundle_mod.sha256(wire).hex()[:12]} instead of {asset.sha256[:12]}): reinstall vsa")
    return wire


def builtin_wire(sha256: bytes) -> bytes | None:
    """The wire form of the shipped base with this hash, or None if no shipped base has it."""
    for asset in BASES.values():
        if asset.sha256 == sha256.hex():
            return read_asset(asset)
    return None


def load_base(path: str | None = None) -> tuple[bytes, Bundle]:
    """(wire form, bundle) of a base: the shipped default, a bundle file (.pt) or a wire file (.vsam)."""
    if path is None:
        wire = read_asset(BASES[DEFAULT_BASE])
    elif not os.path.exists(path):
        raise BundleError(f"base model not found: {path}")
    elif path.endswith(".vsam"):
        with open(path, "rb") as f:
            wire = f.read()
    else:
        base = bundle_mod.load(path)
        if base.base_wire is not None:
            raise BundleError(f"{path} is itself fine-tuned from a base; a base must be a whole model")
        wire = bundle_mod.to_wire(base)
    bundle = bundle_mod.from_wire(wire)
    if bundle.base_wire is not None:
        raise BundleError(f"{path} is a delta; a base must be a whole model")
    return wire, bundle
