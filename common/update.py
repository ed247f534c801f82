"""Model updates mid-stream: sparse, quantised weight changes and the digest that names each version.

Both ends hold the same weights at every version: the sender computes the
receiver's next weights with the very operations the receiver runs, so the
digest of the result (`state_digest`) names it exactly and a receiver can
check an update before it plays a single frame with it.

An update changes some entries of some tensors of the model, each by a whole
number of steps of a fixed grid (`UpdateGrid`): for a weight, a multiple
(`GRID_COARSENESS`) of its output channel's int8 step in the model the
stream started with (as in a delta, `vsa.common.bundle`); for a bias or norm
parameter, that multiple of its tensor's largest magnitude /
`bundle.DELTA_FINE_STEPS`. Most entries change by zero steps; only
the ones that moved most are kept (SRVC updates about 1% of its weights), so
the int8 step counts are mostly zeros, which zstd makes nearly free
(van Rozendaal et al.'s point about unchanged weights). Layout::

    "VSAU" | version (1 byte) | header length (u32, big-endian) | zstd(msgpack header) | zstd(int8 steps)

The header lists the changed tensors by name; the body holds one int8 step
count per entry of each, in that order. A reader checks every name against
the model it holds, then decompresses the body into exactly the number of
bytes those tensors have, so an update can never make a receiver allocate
more than its own model's size.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import msgpack
import numpy as np
import torch
import zstandard

from . import bundle as bundle_mod

MAGIC = b"VSAU"
VERSION = 1
ZSTD_LEVEL = 19
MAX_HEADER_BYTES = 64 * 1024
MAX_STEPS = 127
"""An entry moves at most this many grid steps per update (int8); the rest waits for the next update."""
GRID_COARSENESS = 4
"""An update's step, as a multiple of the int8 step the weights were shipped with (and of a delta's fine step
for biases): on the office session, 4 cut an update's bytes by a quarter for the same gain (0.28 dB either way);
8 lost a tenth of the gain."""


class UpdateError(Exception):
    """An update that is malformed, or does not fit the model it is applied to."""


def state_digest(state: dict[str, torch.Tensor]) -> bytes:
    """SHA-256 over a network's weights (names, shapes and fp32 values, in name order): names a model version."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.digest()


@dataclass
class UpdateGrid:
    """Each tensor's step: the grid every update of a stream moves weights on (fixed at the stream's start)."""

    steps: dict[str, torch.Tensor]
    """name -> a step per entry's output channel, broadcastable against the tensor."""

    @classmethod
    def of(cls, state: dict[str, torch.Tensor], axes: dict[str, int], names: list[str]) -> "UpdateGrid":
        """The grid of ``names`` in ``state`` (the model at version 0); ``axes``: weights' output-channel axes."""
        steps = {}
        for name in names:
            t = state[name].float()
            if not t.is_floating_point() or t.dim() == 0:
                continue
            if name in axes:
                axis = axes[name]
                step = bundle_mod._channel_scale(t, axis) * GRID_COARSENESS
                steps[name] = bundle_mod._per_channel(t, step, axis).clone()
            else:
                steps[name] = (t.abs().max().clamp_min(1e-3) * GRID_COARSENESS / bundle_mod.DELTA_FINE_STEPS
                               ).reshape([1] * t.dim())
        return cls(steps)

    @classmethod
    def for_model(cls, bundle: bundle_mod.Bundle, scale: int) -> "UpdateGrid":
        """The grid of the weights a stream at ``scale`` runs (`Architecture.stream_keys`) of ``bundle``."""
        arch = bundle.arch
        with torch.device("meta"):
            axes = bundle_mod._output_axes(arch.build(bundle.config))
        state = bundle.network_state()
        return cls.of(state, axes, arch.stream_keys(bundle.config, scale, list(state)))


def make_update(target: dict[str, torch.Tensor], current: dict[str, torch.Tensor], grid: UpdateGrid,
                keep: int) -> tuple[bytes, dict[str, torch.Tensor], int]:
    """An update moving ``current`` toward ``target``: the ``keep`` entries that moved most, in grid steps.

    Returns (update bytes, the weights after applying it, entries changed).
    The weights are computed by `apply_update` itself, so they are the
    receiver's to the bit.
    """
    moves = {}
    for name, step in grid.steps.items():
        q = torch.round((target[name].float() - current[name].float()) / step).clamp_(-MAX_STEPS, MAX_STEPS)
        moves[name] = q
    flat = torch.cat([q.reshape(-1) for q in moves.values()]) if moves else torch.zeros(0)
    nonzero = int((flat != 0).sum())
    keep = min(max(0, keep), nonzero)
    if keep == 0:
        return b"", current, 0
    threshold = flat.abs().kthvalue(flat.numel() - keep + 1).values
    kept = 0
    changed = {}
    for name, q in moves.items():
        mask = q.abs() >= threshold
        if kept + int(mask.sum()) > keep:  # ties at the threshold: keep the first ones in order
            order = torch.nonzero(mask.reshape(-1)).reshape(-1)[: keep - kept]
            mask = torch.zeros_like(mask).reshape(-1)
            mask[order] = True
            mask = mask.reshape(q.shape)
        selected = torch.where(mask, q, torch.zeros_like(q))
        if bool(selected.any()):
            changed[name] = selected.to(torch.int8)
            kept += int(mask.sum())
    header = msgpack.packb({"tensors": list(changed)}, use_bin_type=True)
    body = b"".join(t.numpy().tobytes() for t in changed.values())
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    head = compressor.compress(header)
    data = MAGIC + bytes([VERSION]) + struct.pack(">I", len(head)) + head + compressor.compress(body)
    return data, apply_update(data, current, grid), kept


def apply_update(data: bytes, current: dict[str, torch.Tensor], grid: UpdateGrid) -> dict[str, torch.Tensor]:
    """The weights ``current`` becomes under update ``data``; UpdateError if it is malformed or foreign.

    ``current`` is left as it was: a refused update changes nothing.
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) < 9 or data[:4] != MAGIC:
        raise UpdateError("not a vsa model update (bad magic)")
    if data[4] != VERSION:
        raise UpdateError(f"model update format {data[4]}; this vsa reads {VERSION}")
    (length,) = struct.unpack(">I", data[5:9])
    if length > len(data) - 9:
        raise UpdateError("model update is truncated (header)")
    try:
        head = bundle_mod._decompress(data[9 : 9 + length], MAX_HEADER_BYTES, "update header")
        header = msgpack.unpackb(head, raw=False, max_array_len=len(grid.steps), max_map_len=4, max_str_len=256,
                                 max_bin_len=0, max_ext_len=0, strict_map_key=True)
    except bundle_mod.BundleError as exc:
        raise UpdateError(str(exc)) from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise UpdateError(f"model update header is corrupt: {exc}") from None
    names = header.get("tensors") if isinstance(header, dict) else None
    if not isinstance(names, list) or not names:
        raise UpdateError("model update names no tensors")
    if len(set(map(str, names))) != len(names) or any(not isinstance(n, str) or n not in grid.steps for n in names):
        raise UpdateError("model update names a tensor twice, or one this stream's model cannot change")
    sizes = [current[name].numel() for name in names]
    try:
        body = bundle_mod._decompress(data[9 + length :], sum(sizes), "update body")
    except bundle_mod.BundleError as exc:
        raise UpdateError(str(exc)) from None
    if len(body) != sum(sizes):
        raise UpdateError(f"model update body holds {len(body)} bytes, its header says {sum(sizes)}")
    out = dict(current)
    at = 0
    for name, size in zip(names, sizes):
        q = torch.from_numpy(np.frombuffer(body, dtype=np.int8, count=size, offset=at).copy())
        at += size
        base = current[name]
        out[name] = (base.float() + q.reshape(base.shape).float() * grid.steps[name]).to(base.dtype)
    return out
