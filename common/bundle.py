"""The model bundle: `ae.pt` on disk, and its compact wire form for shipping.

On disk a bundle is a plain torch checkpoint holding only dicts, strings,
numbers and tensors::

    {"format": "vsa-ae", "version": 1, "kind": "ae" | "inrv", "config": {...},
     "state_dict": {...}, "meta": {...}, "train_state": {...} (optional, for --resume)}

``kind`` says which network the weights are for: the autoencoder (``ae``, the
default when absent) or the INR-V hypernetwork (``inrv``). An INR-V bundle
also holds the learned clip codes (``codes.mu``) for the sender; they never
go into the wire form, because codes travel as the stream's payload.

It is loaded only with ``torch.load(weights_only=True)``, so a file that
carries pickled code is refused, never executed.

The wire form is what the sender ships once per stream: every weight tensor
quantised to int8 per output channel (biases and norm parameters as fp16),
packed with msgpack and compressed with zstd. The receiver names it by its
SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import torch
import zstandard
from torch import nn

from .inrv import INRV, INRVConfig
from .model import AEConfig, Autoencoder

FORMAT = "vsa-ae"
VERSION = 1
WIRE_FORMAT = "vsa-ae-wire"
MAX_WIRE_DECOMPRESSED = 1024 * 1024 * 1024
MAX_TENSORS = 4096
ZSTD_LEVEL = 19


class BundleError(Exception):
    """A model file or wire blob that is missing, corrupt, foreign or unsafe."""


# kind -> (config class, network class)
KINDS: dict[str, tuple[type, type]] = {"ae": (AEConfig, Autoencoder), "inrv": (INRVConfig, INRV)}
SENDER_ONLY_PREFIX = "codes."
"""State entries the sender keeps and the wire form leaves out (INR-V's learned clip codes)."""


def _kind_of(config: Any) -> str:
    return "inrv" if isinstance(config, INRVConfig) else "ae"


@dataclass
class Bundle:
    config: AEConfig | INRVConfig
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    train_state: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return _kind_of(self.config)

    def network_state(self) -> dict[str, torch.Tensor]:
        """The weights of the network itself, without sender-only entries."""
        return {k: v for k, v in self.state_dict.items() if not k.startswith(SENDER_ONLY_PREFIX)}

    def build(self, device: torch.device | str = "cpu") -> Any:
        """The network (Autoencoder or INRV) with these weights, in eval mode on ``device``."""
        model = KINDS[self.kind][1](self.config)
        try:
            model.load_state_dict(self.network_state(), strict=True)
        except RuntimeError as exc:
            raise BundleError(f"weights do not fit a {self.config.preset} {self.kind} model: {exc}") from None
        return model.to(device).eval()


def from_model(model: Autoencoder | INRV, meta: dict[str, Any] | None = None,
               extra: dict[str, torch.Tensor] | None = None) -> Bundle:
    """A bundle of ``model``'s weights; ``extra`` adds sender-only tensors (names starting ``codes.``)."""
    state = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    for name, tensor in (extra or {}).items():
        if not name.startswith(SENDER_ONLY_PREFIX):
            raise ValueError(f"extra bundle entry {name!r} must start with {SENDER_ONLY_PREFIX!r}")
        state[name] = tensor.detach().to("cpu", torch.float32)
    return Bundle(model.config, state, dict(meta or {}))


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
    kind = data.get("kind", "ae")
    if kind not in KINDS:
        raise BundleError(f"{path} holds a {kind!r} model; this vsa knows {', '.join(KINDS)}")
    try:
        config = KINDS[kind][0].from_dict(data.get("config") or {})
    except ValueError as exc:
        raise BundleError(f"{path}: {exc}") from None
    state = data.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(f"{path} has no valid state_dict")
    if data.get("sha256") != content_digest({k: v for k, v in data.items() if k != "sha256"}):
        raise BundleError(f"{path} fails its SHA-256 check: the weights are corrupted")
    bundle = Bundle(config, state, dict(data.get("meta") or {}), data.get("train_state"))
    bundle.build()  # fail now, with a clear message, if the weights do not fit
    return bundle


# --- wire form -------------------------------------------------------------------------


def _output_axis(model: nn.Module) -> dict[str, int]:
    """Which axis of each weight holds output channels (1 for transposed convolutions)."""
    axes = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            axes[f"{name}.weight"] = 1 if isinstance(module, nn.ConvTranspose2d) else 0
    return axes


def _quantise(t: torch.Tensor, axis: int) -> tuple[bytes, bytes]:
    moved = t.float().movedim(axis, 0).reshape(t.shape[axis], -1)
    scale = moved.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(moved / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.numpy().tobytes(), scale.to(torch.float32).numpy().tobytes()


def _dequantise(q: bytes, scale: bytes, shape: list[int], axis: int) -> torch.Tensor:
    channels = shape[axis]
    moved_shape = [shape[axis]] + [s for i, s in enumerate(shape) if i != axis]
    qt = torch.from_numpy(np.frombuffer(q, dtype=np.int8).copy()).float().reshape(channels, -1)
    st = torch.from_numpy(np.frombuffer(scale, dtype=np.float32).copy())
    return (qt * st[:, None]).reshape(moved_shape).movedim(0, axis).contiguous()


def to_wire(bundle: Bundle) -> bytes:
    """Quantise and compress ``bundle`` for shipping."""
    axes = _output_axis(KINDS[bundle.kind][1](bundle.config))
    tensors = []
    for name, t in bundle.network_state().items():
        entry: dict[str, Any] = {"name": name, "shape": list(t.shape)}
        if name in axes:
            entry["kind"] = "int8"
            entry["axis"] = axes[name]
            entry["data"], entry["scale"] = _quantise(t, axes[name])
        elif t.is_floating_point():
            half = t.to(torch.float16)
            # Fall back to fp32 where fp16 would overflow (e.g. a huge running_var).
            if torch.isfinite(half).all():
                entry["kind"], entry["data"] = "f16", half.numpy().tobytes()
            else:
                entry["kind"], entry["data"] = "f32", t.float().numpy().tobytes()
        else:
            entry["kind"], entry["data"] = "i64", t.to(torch.int64).numpy().tobytes()
        tensors.append(entry)
    meta = {k: v for k, v in bundle.meta.items() if isinstance(v, (str, int, float, bool, list))}
    body = msgpack.packb(
        {"format": WIRE_FORMAT, "version": VERSION, "kind": bundle.kind, "config": bundle.config.to_dict(),
         "meta": meta,
         "tensors": tensors},
        use_bin_type=True,
    )
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)


def sha256(wire: bytes) -> bytes:
    return hashlib.sha256(wire).digest()


_DTYPES = {"f16": (np.float16, 2), "f32": (np.float32, 4), "i64": (np.int64, 8)}


def from_wire(wire: bytes, expected_sha256: bytes | None = None) -> Bundle:
    """Verify, decompress and dequantise a wire blob into a bundle."""
    if expected_sha256 is not None and sha256(wire) != expected_sha256:
        raise BundleError("model wire bytes do not match their SHA-256")
    try:
        body = zstandard.ZstdDecompressor().decompress(wire, max_output_size=MAX_WIRE_DECOMPRESSED)
        data = msgpack.unpackb(body, raw=False, max_array_len=MAX_TENSORS, max_map_len=64)
    except (zstandard.ZstdError, ValueError, TypeError, msgpack.UnpackException) as exc:
        raise BundleError(f"model wire form is corrupt: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != WIRE_FORMAT or data.get("version") != VERSION:
        raise BundleError("model wire form has an unknown format or version")
    kind = data.get("kind", "ae")
    if kind not in KINDS:
        raise BundleError(f"model wire form holds an unknown kind of model {kind!r}")
    try:
        config = KINDS[kind][0].from_dict(data["config"])
        reference = KINDS[kind][1](config).state_dict()
        state: dict[str, torch.Tensor] = {}
        for entry in data["tensors"]:
            name, shape, kind = entry["name"], entry["shape"], entry["kind"]
            if name not in reference or list(reference[name].shape) != list(shape):
                raise BundleError(f"model wire form has an unexpected tensor {name!r} {shape}")
            count = int(reference[name].numel())
            if kind == "int8":
                axis = entry["axis"]
                if axis not in (0, 1) or len(entry["data"]) != count or len(entry["scale"]) != 4 * shape[axis]:
                    raise BundleError(f"model wire tensor {name!r} has the wrong size")
                tensor = _dequantise(entry["data"], entry["scale"], shape, axis)
            elif kind in _DTYPES:
                dtype, width = _DTYPES[kind]
                if len(entry["data"]) != count * width:
                    raise BundleError(f"model wire tensor {name!r} has the wrong size")
                tensor = torch.from_numpy(np.frombuffer(entry["data"], dtype=dtype).copy()).reshape(shape)
                tensor = tensor.to(reference[name].dtype)
            else:
                raise BundleError(f"model wire tensor {name!r} has unknown kind {kind!r}")
            state[name] = tensor
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"model wire form is malformed: {exc!r}") from None
    missing = reference.keys() - state.keys()
    if missing:
        raise BundleError(f"model wire form lacks {len(missing)} tensors, e.g. {sorted(missing)[0]!r}")
    if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
        raise BundleError("model wire form holds non-finite weights")
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    return Bundle(config, state, meta)
