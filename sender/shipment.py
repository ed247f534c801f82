"""What a sender ships for its model: the model's wire form and, for a fine-tuned model, its base.

A stream names every blob by SHA-256 and size in its hello. A blob shipped
with vsa itself (a base model) is never transferred: every receiver has it.
A fine-tuned model travels as a small delta; its base goes along only when
it is not one of vsa's own (a receiver that has it anyway, cached, skips it).
"""

from __future__ import annotations

from dataclasses import dataclass

from vsa.common import bases
from vsa.common import bundle as bundle_mod
from vsa.common.bundle import Bundle


@dataclass(frozen=True)
class Shipment:
    model: bytes
    """The model's wire form: whole, or a delta against ``base``."""
    base: bytes | None = None

    @classmethod
    def of(cls, bundle: Bundle, scale: int | None = None) -> "Shipment":
        """What ships for ``bundle``; for a stream at ``scale``, a delta with only what that scale uses."""
        return cls(bundle_mod.to_wire(bundle, scale=scale), bundle.base_wire)

    @property
    def model_sha256(self) -> bytes:
        return bundle_mod.sha256(self.model)

    def hello_fields(self) -> dict:
        """The hello's fields that name the blobs."""
        fields = {"model_sha256": self.model_sha256, "model_size": len(self.model)}
        if self.base is not None:
            fields.update(base_sha256=bundle_mod.sha256(self.base), base_size=len(self.base))
        return fields

    def blob(self, sha256: bytes) -> bytes | None:
        """The blob with this hash, if it is one of ours."""
        for wire in (self.model, self.base):
            if wire is not None and bundle_mod.sha256(wire) == sha256:
                return wire
        return None

    def to_send(self) -> list[bytes]:
        """The blobs a file must carry (those not shipped with vsa), base first."""
        return [w for w in (self.base, self.model) if w is not None and bases.builtin_wire(bundle_mod.sha256(w)) is None]

    def describe(self) -> str:
        """One line for a user: what is shipped, and how big it is."""
        if self.base is None:
            shipped = bases.builtin_wire(self.model_sha256) is not None
            return f"model {len(self.model) / 1024:.0f} KiB" + (" (shipped with vsa: never transferred)" if shipped else "")
        base_note = "shipped with vsa" if bases.builtin_wire(bundle_mod.sha256(self.base)) is not None else "sent once"
        return (f"delta {len(self.model) / 1024:.1f} KiB against base {bundle_mod.sha256(self.base).hex()[:12]} "
                f"({len(self.base) / 1024:.0f} KiB, {base_note})")


def load_model(path: str | None, scale: int | None = None) -> tuple[Bundle, Shipment]:
    """The bundle to stream with, and what ships for it: the bundle at ``path``, or the base shipped with vsa.

    ``scale``: the stream's, so that a delta carries only what it uses.
    """
    if path is None:
        wire, bundle = bases.load_base()
        return bundle, Shipment(wire)
    bundle = bundle_mod.load(path)
    return bundle, Shipment.of(bundle, scale)
