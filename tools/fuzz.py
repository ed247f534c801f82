"""`vsa fuzz`: every decoder of bytes from a peer or a file, fed generated inputs.

Each decoder gets valid inputs mutated (bits flipped, bytes set to edge
values, length prefixes blown up, slices cut, repeated or spliced in from
another input), random bytes, and for the messages re-packed bodies whose
fields hold values of the wrong type or range. A decoder may accept an input
or refuse it with its own error (`Target.refusals`); anything else that
escapes is a bug, reported with the input that caused it. Peak memory is
the process's peak RSS after each decoder's run: a decoder that believes a
length it was given shows there.

Inputs come from one seeded generator, so a run is the same for the same
``--seed`` and ``--examples``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC0, 0xC1, 0xC4, 0xC6, 0xCE, 0xCF, 0xD3, 0xDB, 0xDD, 0xDF)
"""Byte values worth trying: edges, and msgpack's markers for nil, never-used, 32-bit lengths and big ints."""
HUGE = (2**31 - 1, 2**32 - 1, 2**53, 2**63 - 1, -(2**63), -1, 10**9)
ODD_VALUES = (None, True, -1, 0, 2**64 - 1, 10**18, 1.5, math.nan, math.inf, "", "é" * 200, "x" * 5000, b"",
              b"\x00" * 70_000, [], [1] * 100, {}, {"a": 1})
"""What a re-packed message field may hold instead of its own value."""
DEFAULT_EXAMPLES = 100_000


@dataclass
class Target:
    """One decoder: how to call it, what it may raise, and valid inputs to start from."""

    name: str
    run: Callable[[bytes], object]
    refusals: tuple[type[BaseException], ...]
    seeds: list[bytes]
    structured: Callable[[random.Random], bytes] | None = None
    """Inputs built from the decoder's own structure (messages), besides mutated bytes."""


@dataclass
class Result:
    name: str
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    escaped: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    first_escape: str = ""
    escape_input: str = ""
    errors: dict[str, int] = field(default_factory=dict)


# --- mutation --------------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    """One to four random edits of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8)
        if not out:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            continue
        at = rng.randrange(len(out))
        if kind == 0:
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            out[at] = rng.choice(INTERESTING)
        elif kind == 2:  # a length or count field blown up, in either byte order
            value = rng.choice(HUGE) & 0xFFFFFFFF
            out[at:at + 4] = struct.pack(rng.choice((">I", "<I")), value)
        elif kind == 3:
            del out[at:at + rng.randint(1, max(1, len(out) // 4))]
        elif kind == 4:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif kind == 5:
            piece = out[at:at + rng.randint(1, 64)]
            out[at:at] = piece * rng.randint(1, 8)
        elif kind == 6:
            other = rng.choice(corpus)
            start = rng.randrange(len(other)) if other else 0
            out[at:] = other[start:start + rng.randint(1, 256)]
        else:
            out = out[:at]
    return bytes(out)


def generate(target: Target, rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.05:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 256)))
    if target.structured is not None and roll < 0.35:
        return target.structured(rng)
    return mutate(rng.choice(target.seeds), rng, target.seeds)


# --- the decoders ----------------------------------------------------------------------------


def _messages_target() -> Target:
    import msgpack

    from vsa.protocol.errors import ProtocolError
    from vsa.protocol.messages import (Bye, Frame, Hello, KeyframeRequest, ModelChunk, ModelRequest, ModelUpdate,
                                       Nack, Ready, Stats, decode, encode)

    sha = bytes(range(32))
    seeds = [encode(m) for m in (
        Hello(width=320, height=256, fps=30.0, scale=4, stride=2, codec="vp9", payload="frames", frame_count=650,
              source="asl_office_session.mp4", crf=30, model_sha256=sha, model_size=90_000, adapt=True, feedback=True),
        Frame(seq=7, pts=14, keyframe=True, payload=b"\x82\x49\x83" * 40, capture_us=1_700_000_000_000_000),
        ModelChunk(0, 90_000, sha, b"\x28\xb5\x2f\xfd" + b"\x00" * 200),
        ModelUpdate(1, sha, sha[::-1], b"VSAU\x01" + b"\x00" * 60),
        ModelRequest(0, sha), Ready(adapt=True), KeyframeRequest(6), Bye(frames=650, reason="done"),
        Stats(received=10, interpolated=9, concealed=0, lost=0, fps=30.0, media_kbps=20.0, latency_ms=80.0,
              iterations=1, model_version=2, updates_refused=0),
        Nack(41, 0b1011),
    )]

    def structured(rng: random.Random) -> bytes:
        body = msgpack.unpackb(rng.choice(seeds), raw=False)
        if len(body) > 2 and rng.random() < 0.8:
            body[rng.randrange(2, len(body))] = rng.choice(ODD_VALUES)
        else:
            body.append(rng.choice(ODD_VALUES))
        return msgpack.packb(body, use_bin_type=rng.random() < 0.8)

    return Target("messages", decode, (ProtocolError,), seeds, structured)


def _fragments_target() -> Target:
    from vsa.protocol.errors import ProtocolError
    from vsa.protocol.fragment import Reassembler, fragment

    reassembler = Reassembler()  # one for the whole run: what a flood of fragments leaves behind must stay bounded
    clock = [0.0]

    def feed(data: bytes) -> object:
        clock[0] += 0.001
        reassembler.expire(clock[0], 0.5)
        return reassembler.feed(data, clock[0])

    seeds = fragment(bytes(range(256)) * 20, 5, 1200) + fragment(b"tiny", 6, 1200)
    return Target("fragments", feed, (ProtocolError,), seeds)


def _container_target() -> Target:
    from vsa.protocol.container import ContainerReader, file_header, record
    from vsa.protocol.errors import ProtocolError
    from vsa.protocol.messages import Bye, Frame, Hello

    hello = Hello(width=192, height=128, fps=30.0, scale=4, stride=1, codec="vp9", payload="frames", frame_count=2,
                  model_sha256=bytes(32), model_size=1000)
    seeds = [file_header() + record(hello) + record(Frame(0, 0, True, b"\x01" * 50)) + record(Bye(frames=2))]

    def read(data: bytes) -> object:
        reader = ContainerReader()
        reader.feed(data)
        messages = []
        while (msg := reader.next_message()) is not None:
            messages.append(msg)
        reader.close()
        return messages

    return Target("container", read, (ProtocolError,), seeds)


def _codes_target() -> Target:
    from vsa.protocol.codes import pack_code, unpack_code
    from vsa.protocol.errors import ProtocolError

    def unpack(data: bytes) -> object:
        # The first byte picks the format and a size to claim, as a hello would.
        if not data:
            raise ProtocolError("empty")
        fmt = "f16" if data[0] & 1 else "i8"
        dim = (len(data) - 1) // 2 if fmt == "f16" else len(data) - 5
        if data[0] & 2:
            dim = data[0] * 37
        return unpack_code(data[1:], fmt, dim)

    seeds = [b"\x01" + pack_code([0.5, -1.0, 2.0] * 8, "f16"), b"\x00" + pack_code([0.5, -1.0, 2.0] * 8, "i8")]
    return Target("codes", unpack, (ProtocolError,), seeds)


def _wire_target() -> Target:
    from vsa.common import bases
    from vsa.common.bundle import BundleError, from_wire

    base, _ = bases.load_base()
    return Target("model wire", lambda data: from_wire(data, None, bases.builtin_wire), (BundleError,), [base])


def _delta_target() -> Target:
    import torch

    from vsa.common import bases
    from vsa.common.update import UpdateError, UpdateGrid, apply_update, make_update

    _, bundle = bases.load_base()
    grid = UpdateGrid.for_model(bundle, 4)
    current = bundle.network_state()
    generator = torch.Generator().manual_seed(0)
    target = {k: v + 0.01 * torch.randn(v.shape, generator=generator) if k in grid.steps else v
              for k, v in current.items()}
    seeds = [make_update(target, current, grid, keep)[0] for keep in (10, 200)]
    return Target("model update", lambda data: apply_update(data, current, grid), (UpdateError,), seeds)


def _signaling_target() -> Target:
    from vsa.protocol.errors import ProtocolError
    from vsa.protocol.signaling import OfferGuard, decode_signal, encode_signal, make_answer, make_offer

    token, now = "s3cret", 1_800_000_000.0
    guard = OfferGuard(token)  # one for the run: its replay cache and failure counts must stay bounded
    sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB:CD\r\n" * 3
    offer = make_offer(sdp, token, bytes(16), now)
    seeds = [encode_signal(offer), encode_signal(make_answer(sdp, token, offer)),
             encode_signal(make_offer(sdp, None, bytes(range(16)), now))]
    counter = [0]

    def check(data: bytes) -> object:
        signal = decode_signal(data)
        if signal.type == "offer":
            counter[0] += 1
            guard.check(signal, f"10.0.{counter[0] % 250}.{counter[0] % 7}", now)
        return signal

    return Target("signaling", check, (ProtocolError,), seeds)


TARGETS: dict[str, Callable[[], Target]] = {
    "messages": _messages_target, "fragments": _fragments_target, "container": _container_target,
    "codes": _codes_target, "model wire": _wire_target, "model update": _delta_target,
    "signaling": _signaling_target,
}


# --- running ---------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def fuzz(target: Target, examples: int, seed: int, progress: bool = False) -> Result:
    """Feed ``examples`` generated inputs to ``target``; count what it accepted, refused and let escape."""
    rng = random.Random(f"{seed}:{target.name}")
    result = Result(target.name)
    started = time.perf_counter()
    inputs = range(examples)
    if progress:
        from tqdm import tqdm

        inputs = tqdm(inputs, desc=target.name, unit="input", mininterval=1.0, leave=False)
    for _ in inputs:
        data = generate(target, rng)
        result.inputs += 1
        try:
            target.run(data)
            result.accepted += 1
        except target.refusals as exc:
            result.refused += 1
            result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
        except Exception as exc:  # noqa: BLE001 - anything else escaping a decoder is what we look for
            result.escaped += 1
            if not result.first_escape:
                result.first_escape = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                result.escape_input = data[:512].hex()
    result.seconds = time.perf_counter() - started
    result.peak_rss_mb = _peak_rss_mb()
    return result


def build_parser() -> argparse.ArgumentParser:
    from vsa.common.cliargs import positive_int

    p = argparse.ArgumentParser(
        prog="vsa fuzz",
        description="Feed every decoder of peer or file bytes (messages, fragments, the .vsa container, INR-V "
        "codes, the model wire form, model updates, signaling lines) generated inputs, and report per decoder "
        "what it accepted, what it refused with its own error, and anything else that escaped (a bug). Exits 1 "
        "if anything escaped.",
    )
    p.add_argument("--examples", type=positive_int, default=DEFAULT_EXAMPLES,
                   help="inputs per decoder (default: %(default)s)")
    p.add_argument("--target", action="append", choices=list(TARGETS), help="only this decoder (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("-o", "--output", default="fuzz.json", help="where the figures go (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = []
    print(f"{'decoder':14} {'inputs':>8} {'accepted':>9} {'refused':>8} {'escaped':>8} {'s':>7} {'peak RSS':>9}")
    for name in args.target or list(TARGETS):
        r = fuzz(TARGETS[name](), args.examples, args.seed, progress=sys.stderr.isatty())
        results.append(r)
        print(f"{r.name:14} {r.inputs:8d} {r.accepted:9d} {r.refused:8d} {r.escaped:8d} {r.seconds:7.1f} "
              f"{r.peak_rss_mb:7.0f} MB", flush=True)
        if r.escaped:
            print(f"  first escape: {r.first_escape}\n  input (hex, first 512 bytes): {r.escape_input}")
    with open(args.output, "w") as f:
        json.dump({"examples": args.examples, "seed": args.seed, "results": [r.__dict__ for r in results]}, f,
                  indent=1)
    print(f"wrote {args.output}")
    return 1 if any(r.escaped for r in results) else 0
