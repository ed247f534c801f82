"""The model bundle: `ae.pt` on disk, and its compact wire form for shipping.

On disk a bundle is a plain torch checkpoint holding only dicts, strings,
numbers, bytes and tensors::

    {"format": "vsa-ae", "version": 1, "kind": "ae" | "sr" | "inrv" | ..., "config": {...},
     "state_dict": {...}, "meta": {...}, "train_state": {...} (optional, for --resume),
     "base_wire": bytes (optional: the wire form of the base it was fine-tuned from), "sha256": ...}

``kind`` names the architecture in `vsa.common.registry`. An INR-V bundle
also holds the learned clip codes (``codes.mu``) for the sender; they never
go into the wire form, because codes travel as the stream's payload.

It is loaded only with ``torch.load(weights_only=True)``, so a file that
carries pickled code is refused, never executed.

The wire form is what the sender ships once per stream (or never: a base
that both ends have is named by its hash alone)::

    "VSAW" | version (1 byte) | header length (u32, big-endian) | zstd(header) | zstd(body)

The header is a msgpack map: the architecture, its config, a little meta and
a directory of tensors (name, shape, coding). The body is the tensors' bytes
back to back. A reader decompresses the header (at most `MAX_HEADER_BYTES`),
checks the config against the architecture's bounds and size cap and every
tensor's name and shape against the network built on the meta device, and
only then decompresses the body, into exactly the bytes that directory
implies. A blob cannot make a receiver allocate more than a model of the size
it admits to, and that is capped (`vsa.common.registry.MAX_PARAMETERS`).

Weights are int8 per output channel with an fp32 scale per channel (biases
and norm parameters fp16). A *delta* (``base_sha256`` in the header) holds a
fine-tuned model as its difference from a base, quantised on the base's own
int8 grid: weights that moved less than half a step cost a zero, which zstd
makes nearly free (van Rozendaal et al.'s point, with a uniform prior).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable

import msgpack
import numpy as np
import torch
import zstandard
from torch import nn

from . import registry

FORMAT = "vsa-ae"
VERSION = 1
WIRE_MAGIC = b"VSAW"
WIRE_VERSION = 2
MAX_HEADER_BYTES = 1 << 20
MAX_TENSORS = 4096
MAX_META_TEXT = 1024
ZSTD_LEVEL = 19
DELTA_STEP = 1.0
"""A delta's quantisation step, as a multiple of the base's own int8 step for that channel (measured:
README, "Deltas"): the fine-tuned weights come out exactly as precise as a full int8 wire form."""
DELTA_FINE_STEPS = 2048
"""Biases and norm parameters of a delta are quantised in steps of their base's largest magnitude / this."""


class BundleError(Exception):
    """A model file or wire blob that is missing, corrupt, foreign or unsafe."""


SENDER_ONLY_PREFIX = "codes."
"""State entries the sender keeps and the wire form leaves out (INR-V's learned clip codes)."""

BaseLookup = Callable[[bytes], "bytes | None"]
"""sha256 -> the wire form of that base model, or None when this end does not have it."""


@dataclass
class Bundle:
    config: Any
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    train_state: dict[str, Any] | None = None
    base_wire: bytes | None = None
    """The wire form of the base these weights were fine-tuned from: the wire form is then a delta."""

    @property
    def arch(self) -> registry.Architecture:
        return registry.of_config(self.config)

    @property
    def kind(self) -> str:
        """The architecture's name."""
        return self.arch.name

    @property
    def base_sha256(self) -> bytes | None:
        return sha256(self.base_wire) if self.base_wire is not None else None

    def network_state(self) -> dict[str, torch.Tensor]:
        """The weights of the network itself, without sender-only entries."""
        return {k: v for k, v in self.state_dict.items() if not k.startswith(SENDER_ONLY_PREFIX)}

    def build(self, device: torch.device | str = "cpu") -> nn.Module:
        """The network with these weights, in eval mode on ``device``."""
        model = self.arch.build(self.config)
        try:
            model.load_state_dict(self.network_state(), strict=True)
        except RuntimeError as exc:
            raise BundleError(f"weights do not fit a {self.config.preset} {self.kind} model: {exc}") from None
        return model.to(device).eval()


def from_model(model: nn.Module, meta: dict[str, Any] | None = None,
               extra: dict[str, torch.Tensor] | None = None, base_wire: bytes | None = None) -> Bundle:
    """A bundle of ``model``'s weights; ``extra`` adds sender-only tensors (names starting ``codes.``)."""
    state = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    for name, tensor in (extra or {}).items():
        if not name.startswith(SENDER_ONLY_PREFIX):
            raise ValueError(f"extra bundle entry {name!r} must start with {SENDER_ONLY_PREFIX!r}")
        state[name] = tensor.detach().to("cpu", torch.float32)
    return Bundle(model.config, state, dict(meta or {}), base_wire=base_wire)


def content_digest(obj: Any) -> str:
    """SHA-256 over a checkpoint's contents: every key, number, string and tensor byte.

    torch's zip reader does not check CRCs, so without this a flipped byte in
    a weight would load silently.
    """
    h = hashlib.sha256()

    def walk(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu()
            h.update(f"T{tuple(t.shape)}{t.dtype}|".encode())
            h.update(t.reshape(-1).numpy().tobytes())
        elif isinstance(value, dict):
            h.update(f"D{len(value)}|".encode())
            for key in sorted(value, key=repr):
                h.update(f"{key!r}:".encode())
                walk(value[key])
        elif isinstance(value, (list, tuple)):
            h.update(f"L{len(value)}|".encode())
            for item in value:
                walk(item)
        else:
            h.update(f"{type(value).__name__}:{value!r}|".encode())

    walk(obj)
    return h.hexdigest()


def save(bundle: Bundle, path: str) -> None:
    """Write atomically: a crash mid-write never destroys the previous file."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": bundle.kind,
        "config": bundle.config.to_dict(),
        "state_dict": bundle.state_dict,
        "meta": bundle.meta,
    }
    if bundle.train_state is not None:
        payload["train_state"] = bundle.train_state
    if bundle.base_wire is not None:
        payload["base_wire"] = bundle.base_wire
    payload["sha256"] = content_digest(payload)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load(path: str) -> Bundle:
    """Load a bundle with weights_only=True; raise BundleError with the reason on any problem."""
    if not os.path.exists(path):
        raise BundleError(f"model file not found: {path}")
    if not zipfile.is_zipfile(path):
        # torch.save always writes a zip archive; anything else is damaged or foreign.
        raise BundleError(f"{path} is not a readable torch checkpoint (corrupt, truncated or not a model file)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling refused"
        raise BundleError(
            f"{path} is not a safe vsa model: it holds pickled objects that weights_only loading refuses ({first})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BundleError(f"{path} is not a readable torch checkpoint (corrupt or truncated?): {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{path} is a torch file but not a vsa model bundle (format {FORMAT!r} expected)")
    if data.get("version") != VERSION:
        raise BundleError(f"{path} has bundle version {data.get('version')!r}; this vsa reads version {VERSION}")
    try:
        arch = registry.get(data.get("kind", "ae"))
        config = arch.config_from_dict(data.get("config") or {})
    except ValueError as exc:
        raise BundleError(f"{path}: {exc}") from None
    state = data.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(f"{path} has no valid state_dict")
    if data.get("sha256") != content_digest({k: v for k, v in data.items() if k != "sha256"}):
        raise BundleError(f"{path} fails its SHA-256 check: the weights are corrupted")
    base_wire = data.get("base_wire")
    if base_wire is not None and not isinstance(base_wire, bytes):
        raise BundleError(f"{path} has a malformed base model")
    bundle = Bundle(config, state, dict(data.get("meta") or {}), data.get("train_state"), base_wire)
    bundle.build()  # fail now, with a clear message, if the weights do not fit
    return bundle


# --- wire form -------------------------------------------------------------------------


def sha256(wire: bytes) -> bytes:
    return hashlib.sha256(wire).digest()


def _output_axes(model: nn.Module) -> dict[str, int]:
    """Which axis of each weight holds output channels (1 for transposed convolutions)."""
    axes = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            axes[f"{name}.weight"] = 1 if isinstance(module, nn.ConvTranspose2d) else 0
    return axes


def _channel_scale(t: torch.Tensor, axis: int) -> torch.Tensor:
    """The int8 step of each output channel: its largest magnitude over 127."""
    return t.float().movedim(axis, 0).reshape(t.shape[axis], -1).abs().amax(dim=1).clamp_min(1e-12) / 127.0


def _per_channel(values: torch.Tensor, scale: torch.Tensor, axis: int) -> torch.Tensor:
    """``scale`` (one per output channel) broadcast against ``values``."""
    shape = [1] * values.dim()
    shape[axis] = -1
    return scale.view(shape)


# Bytes per value of each coding; int8 and the delta codings also carry one fp32 step per channel.
_WIDTHS = {"int8": 1, "f16": 2, "f32": 4, "i64": 8, "d8": 1, "d16": 2, "same": 0}
_NUMPY = {"f16": np.float16, "f32": np.float32, "i64": np.int64, "int8": np.int8, "d8": np.int8, "d16": np.int16}


def _entry_bytes(entry: dict, count: int, shape: list[int]) -> int:
    width = _WIDTHS[entry["coding"]]
    scales = 4 * shape[entry["axis"]] if entry["coding"] in ("int8", "d8", "d16") else 0
    return count * width + scales


def _encode_tensor(name: str, t: torch.Tensor, axis: int | None, base: torch.Tensor | None) -> tuple[dict, bytes]:
    """(directory entry, body bytes) for one tensor; against ``base`` when given (a delta)."""
    entry: dict[str, Any] = {"name": name, "shape": list(t.shape)}
    if base is not None and torch.equal(t, base):
        entry["coding"] = "same"
        return entry, b""
    if base is not None and t.is_floating_point() and t.dim() > 0:
        if axis is not None:
            # Weights: the base's own int8 step for each output channel.
            step_axis, step = axis, _channel_scale(base, axis) * DELTA_STEP
        else:
            # Biases and norm parameters travel as fp16 in a whole model: keep about that precision.
            step_axis = 0
            step = (base.float().abs().max().clamp_min(1e-6) / DELTA_FINE_STEPS).expand(t.shape[0]).contiguous()
        q = torch.round((t.float() - base.float()) / _per_channel(t, step, step_axis))
        if not bool(q.any()):
            entry["coding"] = "same"
            return entry, b""
        peak = float(q.abs().max())
        if peak <= 32767:  # else the tensor moved too far from its base: send it whole, below
            entry["coding"], entry["axis"] = ("d16" if peak > 127 else "d8"), step_axis
            values = q.to(torch.int16 if peak > 127 else torch.int8)
            return entry, values.numpy().tobytes() + step.to(torch.float32).numpy().tobytes()
    if axis is not None:
        scale = _channel_scale(t, axis)
        q = torch.round(t.float() / _per_channel(t, scale, axis)).clamp_(-127, 127).to(torch.int8)
        entry["coding"], entry["axis"] = "int8", axis
        return entry, q.numpy().tobytes() + scale.numpy().tobytes()
    if t.is_floating_point():
        half = t.to(torch.float16)
        # Fall back to fp32 where fp16 would overflow (e.g. a huge running_var).
        if torch.isfinite(half).all():
            entry["coding"] = "f16"
            return entry, half.numpy().tobytes()
        entry["coding"] = "f32"
        return entry, t.float().numpy().tobytes()
    entry["coding"] = "i64"
    return entry, t.to(torch.int64).numpy().tobytes()


def _wire_meta(meta: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in meta.items():
        if isinstance(value, (int, float, bool)) or (isinstance(value, str) and len(value) <= MAX_META_TEXT):
            out[str(key)[:64]] = value
        elif isinstance(value, list) and len(value) <= 16 and all(isinstance(v, (int, float)) for v in value):
            out[str(key)[:64]] = value
    return out


def to_wire(bundle: Bundle, full: bool = False, scale: int | None = None) -> bytes:
    """Quantise and compress ``bundle`` for shipping: a delta against its base if it has one (unless ``full``).

    ``scale``: the delta is for streams at this scale only, and leaves out the
    changes to weights such a stream never runs (`Architecture.stream_state`).
    """
    arch = bundle.arch
    with torch.device("meta"):  # only the layer types matter here: allocate no weights
        axes = _output_axes(arch.build(bundle.config))
    base_state = None
    header: dict[str, Any] = {"kind": arch.name, "config": bundle.config.to_dict(), "meta": _wire_meta(bundle.meta)}
    if bundle.base_wire is not None and not full:
        base = from_wire(bundle.base_wire)
        if base.kind != bundle.kind or base.config != bundle.config:
            raise BundleError(f"the base is a {base.config} {base.kind} model, the fine-tuned one a {bundle.config}")
        base_state = base.network_state()
        header["base_sha256"] = sha256(bundle.base_wire)
    state = bundle.network_state()
    if base_state is not None and scale is not None:
        state = arch.stream_state(state, base_state, bundle.config, scale)
    entries, body = [], []
    for name, t in state.items():
        entry, data = _encode_tensor(name, t, axes.get(name), base_state[name] if base_state is not None else None)
        entries.append(entry)
        body.append(data)
    header["tensors"] = entries
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    head = compressor.compress(msgpack.packb(header, use_bin_type=True))
    return WIRE_MAGIC + bytes([WIRE_VERSION]) + struct.pack(">I", len(head)) + head + compressor.compress(b"".join(body))


def _decompress(data: bytes, limit: int, what: str) -> bytes:
    """Decompress one zstd frame into at most ``limit`` bytes, streaming, so a bomb never gets further."""
    out = bytearray()
    reader = zstandard.ZstdDecompressor().stream_reader(data)
    try:
        while chunk := reader.read(min(1 << 20, limit + 1 - len(out))):
            out += chunk
            if len(out) > limit:
                raise BundleError(f"model wire form: the {what} decompresses to more than the {limit} bytes it may")
            if len(out) == limit:
                if reader.read(1):
                    raise BundleError(f"model wire form: the {what} decompresses to more than the {limit} bytes it may")
                break
    except zstandard.ZstdError as exc:
        raise BundleError(f"model wire form is corrupt ({what}): {exc}") from None
    return bytes(out)


def read_header(wire: bytes) -> tuple[dict, int]:
    """The wire form's header (checked to be a map) and where its body starts; nothing else is decompressed."""
    if not isinstance(wire, (bytes, bytearray)) or len(wire) < 9 or wire[:4] != WIRE_MAGIC:
        raise BundleError("not a vsa model wire form (bad magic)")
    if wire[4] != WIRE_VERSION:
        raise BundleError(f"model wire form version {wire[4]}; this vsa reads version {WIRE_VERSION}")
    (length,) = struct.unpack(">I", wire[5:9])
    if length > len(wire) - 9:
        raise BundleError("model wire form is truncated (header)")
    head = _decompress(wire[9 : 9 + length], MAX_HEADER_BYTES, "header")
    try:
        header = msgpack.unpackb(head, raw=False, max_array_len=MAX_TENSORS, max_map_len=64,
                                 max_str_len=MAX_META_TEXT, max_bin_len=64, max_ext_len=0, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise BundleError(f"model wire header is corrupt: {exc}") from None
    if not isinstance(header, dict):
        raise BundleError("model wire header is not a map")
    return header, 9 + length


def base_of(wire: bytes) -> bytes | None:
    """The SHA-256 of the base a wire blob is a delta against, or None for a whole model."""
    value = read_header(wire)[0].get("base_sha256")
    if value is not None and (not isinstance(value, bytes) or len(value) != 32):
        raise BundleError("model wire header names a malformed base hash")
    return value


def _decode_entry(entry: Any, reference: dict[str, torch.Tensor]) -> tuple[str, list[int], dict]:
    if not isinstance(entry, dict):
        raise BundleError("model wire directory entry is not a map")
    name, shape, coding = entry.get("name"), entry.get("shape"), entry.get("coding")
    if not isinstance(name, str) or name not in reference or not isinstance(shape, list) \
            or list(reference[name].shape) != shape:
        raise BundleError(f"model wire form has an unexpected tensor {name!r} {shape}")
    if coding not in _WIDTHS:
        raise BundleError(f"model wire tensor {name!r} has unknown coding {coding!r}")
    if coding in ("int8", "d8", "d16"):
        axis = entry.get("axis")
        if isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < len(shape):
            raise BundleError(f"model wire tensor {name!r} has a bad axis {axis!r}")
    return name, shape, entry


def from_wire(wire: bytes, expected_sha256: bytes | None = None, base_lookup: BaseLookup | None = None) -> Bundle:
    """Verify, decompress and dequantise a wire blob into a bundle.

    A delta needs its base: ``base_lookup(sha256)`` returns that base's wire
    form, or None when this end does not have it (which is an error naming it).
    """
    if expected_sha256 is not None and sha256(wire) != expected_sha256:
        raise BundleError("model wire bytes do not match their SHA-256")
    header, body_at = read_header(wire)
    try:
        arch = registry.get(header.get("kind"))
        config = arch.config_from_dict(header.get("config"))
    except ValueError as exc:
        raise BundleError(f"model wire form: {exc}") from None
    reference = arch.reference_state(config)  # shapes only: nothing is allocated for a config not yet trusted
    entries = header.get("tensors")
    if not isinstance(entries, list):
        raise BundleError("model wire form has no tensor directory")
    directory = [_decode_entry(e, reference) for e in entries]
    if len({name for name, _, _ in directory}) != len(directory):
        raise BundleError("model wire form lists a tensor twice")
    missing = reference.keys() - {name for name, _, _ in directory}
    if missing:
        raise BundleError(f"model wire form lacks {len(missing)} tensors, e.g. {sorted(missing)[0]!r}")
    counts = {name: int(reference[name].numel()) for name, _, _ in directory}
    expected = sum(_entry_bytes(entry, counts[name], shape) for name, shape, entry in directory)
    body = _decompress(wire[body_at:], expected, "body")
    if len(body) != expected:
        raise BundleError(f"model wire body holds {len(body)} bytes, its directory says {expected}")

    base_wire, base_state = None, None
    base_hash = header.get("base_sha256")
    if base_hash is not None:
        if not isinstance(base_hash, bytes) or len(base_hash) != 32:
            raise BundleError("model wire header names a malformed base hash")
        base_wire = base_lookup(base_hash) if base_lookup is not None else None
        if base_wire is None:
            raise BundleError(f"the model is a delta against base {base_hash.hex()[:12]}, which is not available here")
        if sha256(base_wire) != base_hash:
            raise BundleError(f"the base supplied for delta has hash {sha256(base_wire).hex()[:12]}, "
                              f"the delta was made against {base_hash.hex()[:12]}")
        if base_of(base_wire) is not None:
            raise BundleError("a base model must be a whole model, not itself a delta")
        base = from_wire(base_wire)
        if base.kind != arch.name or base.config != config:
            raise BundleError(f"delta is for a {arch.name} model {config}, its base is a {base.kind} {base.config}")
        base_state = base.network_state()
    elif any(entry["coding"] in ("d8", "d16", "same") for _, _, entry in directory):
        raise BundleError("model wire form holds delta tensors but names no base")

    state: dict[str, torch.Tensor] = {}
    at = 0
    for name, shape, entry in directory:
        coding, count = entry["coding"], counts[name]
        size = count * _WIDTHS[coding]
        raw = body[at : at + size]
        at += size
        if coding == "same":
            state[name] = base_state[name].clone()
            continue
        values = torch.from_numpy(np.frombuffer(raw, dtype=_NUMPY[coding]).copy()).reshape(shape)
        if coding in ("int8", "d8", "d16"):
            axis = entry["axis"]
            step = torch.from_numpy(np.frombuffer(body[at : at + 4 * shape[axis]], dtype=np.float32).copy())
            at += 4 * shape[axis]
            scaled = values.float() * _per_channel(values, step, axis)
            tensor = scaled if coding == "int8" else base_state[name].float() + scaled
        else:
            tensor = values
        state[name] = tensor.to(reference[name].dtype)
    if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
        raise BundleError("model wire form holds non-finite weights")
    meta = header.get("meta") if isinstance(header.get("meta"), dict) else {}
    return Bundle(config, state, dict(meta), base_wire=base_wire)
