"""Offline file mode: `vsa encode` and `vsa decode`.

The `.vsa` file is a thin shell over the protocol: `protocol.container`
frames exactly the messages a live stream sends (hello, the model once, the
frames, bye). This module only moves bytes between disk and the sans-I/O
pieces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from vsa.common import bundle as bundle_mod
from vsa.common.metrics import mean_psnr, psnr, ssim
from vsa.common.resample import to_tensor, to_uint8
from vsa.common.video import VideoSource, VideoWriter, default_working_size, fit_frame, read_video
from vsa.protocol.container import ContainerReader, file_header, record
from vsa.protocol.errors import ProtocolError
from vsa.protocol.messages import Hello
from vsa.receiver.decoder import make_decoder
from vsa.receiver.stream import Kind, OutputFrame
from vsa.sender.adapt_options import AdaptSettings
from vsa.sender.inrv_stream import CodeEncoder, CodeSettings
from vsa.sender.ladder import DEFAULT_LADDER, Rung, settle
from vsa.sender.shipment import load_model
from vsa.sender.stream import StreamEncoder, StreamSettings

READ_CHUNK = 1 << 20


def kbps(num_bytes: int, seconds: float) -> float:
    return num_bytes * 8 / 1000 / seconds if seconds > 0 else 0.0


@dataclass
class EncodeReport:
    frames: int
    frames_sent: int
    fps: float
    size: tuple[int, int]
    payload_bytes: int
    model_bytes: int
    file_bytes: int
    model_note: str = ""
    """What ships for the model (`Shipment.describe`)."""
    update_bytes: int = 0
    updates: int = 0
    """Model updates interleaved by online adaptation (``--adapt``)."""
    point: str = ""
    """The operating point, as ``scale S, stride N`` (and the target, with ``--kbps``)."""

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def summary(self) -> str:
        return (
            f"{self.frames} frames at {self.size[0]}x{self.size[1]}, {self.fps:g} fps, {self.frames_sent} sent"
            + (f" ({self.point})" if self.point else "") + "\n"
            f"payload: {self.payload_bytes} bytes = {kbps(self.payload_bytes, self.seconds):.1f} kbps (frames only)\n"
            + (f"model updates: {self.updates}, {self.update_bytes} bytes = "
               f"{kbps(self.update_bytes, self.seconds):.1f} kbps\n" if self.updates else "") +
            f"whole file: {self.file_bytes} bytes = {kbps(self.file_bytes, self.seconds):.1f} kbps "
            f"({self.model_note or f'model {self.model_bytes / 1024:.0f} KiB'})"
        )


def encode_file(
    video: str,
    model_path: str | None,
    output: str,
    settings: StreamSettings,
    size: tuple[int, int] | None = None,
    limit: int | None = None,
    progress: bool = False,
    codes: CodeSettings | None = None,
    payload: str | None = None,
    adapt: AdaptSettings | None = None,
    ladder: tuple[bool, bool] = (False, False),
    rungs: tuple[Rung, ...] = DEFAULT_LADDER,
) -> EncodeReport:
    """Encode ``video`` with the model at ``model_path`` (None: the base shipped with vsa) into a `.vsa` file.

    A codes model (INR-V) writes one code per clip (``codes`` says how they
    are found); a frames model writes low-res frames as ``settings`` says.
    ``payload``, when given, is the one the caller expects (else BundleError).
    ``adapt`` fine-tunes the model while coding and interleaves its updates (`vsa.sender.adapt`).
    ``ladder`` (with ``settings.kbps``): whether the scale and the stride are the ladder's to choose
    (`vsa.sender.ladder`, ``rungs``) rather than the ones in ``settings``.
    """
    bundle, shipment = load_model(model_path, settings.scale)
    if payload is not None and payload != bundle.arch.payload:
        raise bundle_mod.BundleError(f"{model_path or 'the base model'} is a {bundle.kind} model, whose stream "
                                     f"carries {bundle.arch.payload}, not {payload}")
    if bundle.arch.payload == "codes":
        if adapt is not None:
            raise ValueError(f"{bundle.kind} models cannot adapt online: their stream carries codes, not frames")
        return _encode_codes(video, bundle, output, codes or CodeSettings(), limit, progress)
    if size is None:
        meta_size = bundle.meta.get("size")
        size = tuple(meta_size) if isinstance(meta_size, (list, tuple)) and len(meta_size) == 2 else None
    with VideoSource(video) as source:
        info = source.info
        if size is None:
            size = default_working_size(info.width, info.height)
        if settings.kbps and any(ladder):
            scale, stride = settle(settings.kbps, size, info.fps, None if ladder[0] else settings.scale,
                                   None if ladder[1] else settings.stride, getattr(bundle.config, "scales", None),
                                   rungs)
            if scale != settings.scale:
                bundle, shipment = load_model(model_path, scale)
            settings = replace(settings, scale=scale, stride=stride)
        encoder = StreamEncoder(shipment, size, info.fps, settings,
                                frame_count=min(info.frame_count, limit or 1 << 62), source=info.name, adapt=adapt)
        count = _write_stream(source, encoder, output, limit, progress,
                              "encoding" + (" and adapting" if adapt else ""), lambda rgb: fit_frame(rgb, *size))
    return EncodeReport(count, encoder.frames_sent, info.fps, size, encoder.payload_bytes, len(shipment.model),
                        os.path.getsize(output), shipment.describe(), encoder.update_bytes,
                        encoder.session.model_version,
                        f"scale {settings.scale}, stride {settings.stride}"
                        + (f", target {settings.kbps:g} kbps" if settings.kbps else ""))


def _encode_codes(video: str, bundle: bundle_mod.Bundle, output: str, settings: CodeSettings,
                  limit: int | None, progress: bool) -> EncodeReport:
    with VideoSource(video) as source:
        info = source.info
        encoder = CodeEncoder(bundle, info.fps, settings, frame_count=min(info.frame_count, limit or 1 << 62),
                              source=info.name)
        # The code encoder fits each frame to the model's size itself.
        count = _write_stream(source, encoder, output, limit, progress, f"encoding ({settings.codes} codes)",
                              lambda rgb: rgb)
    return EncodeReport(count, encoder.codes_sent, info.fps, encoder.size, encoder.payload_bytes,
                        len(encoder.model_wire), os.path.getsize(output))


def _write_stream(source: VideoSource, encoder: StreamEncoder | CodeEncoder, output: str, limit: int | None,
                  progress: bool, desc: str, prepare: Callable[[np.ndarray], np.ndarray]) -> int:
    """Write ``encoder``'s stream of ``source``'s frames to ``output`` (replaced only once complete).

    Returns the number of frames read. One frame of look-ahead, so the last
    frame is known and always sent (and the last INR-V clip coded).
    """
    frames = source.frames(limit)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=encoder.frame_count or None, desc=desc, unit="frame", mininterval=1.0)
    tmp = f"{output}.tmp-{os.getpid()}"
    count = 0
    with open(tmp, "wb") as out:
        out.write(file_header())
        for msg in encoder.start():
            out.write(record(msg))
        previous = None
        for rgb in frames:
            if previous is not None:
                for msg in encoder.push(count - 1, previous):
                    out.write(record(msg))
            previous = prepare(rgb)
            count += 1
        if previous is None:
            raise ValueError(f"{source.spec!r} contains no frames")
        for msg in encoder.push(count - 1, previous, last=True):
            out.write(record(msg))
        for msg in encoder.finish():
            out.write(record(msg))
    os.replace(tmp, output)
    return count


@dataclass
class DecodeReport:
    frames: int = 0
    counts: dict = field(default_factory=dict)
    fps: float = 0.0
    output_fps: float = 0.0
    size: tuple[int, int] = (0, 0)
    payload_bytes: int = 0
    file_bytes: int = 0
    model_bytes: int = 0
    source_frames: int = 0
    error: str | None = None
    metrics: dict = field(default_factory=dict)
    updates: dict = field(default_factory=dict)
    """Model updates: applied, refused, the version played at the end, frames decoded with another version."""

    @property
    def seconds(self) -> float:
        return self.source_frames / self.fps if self.fps else 0.0

    def summary(self) -> str:
        parts = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        lines = [
            f"{self.frames} frames at {self.size[0]}x{self.size[1]}, {self.output_fps:g} fps ({parts})",
            f"payload: {kbps(self.payload_bytes, self.seconds):.1f} kbps (frames only); "
            f"with model: {kbps(self.file_bytes, self.seconds):.1f} kbps (whole file; model {self.model_bytes / 1024:.0f} KiB)",
        ]
        if self.updates.get("applied") or self.updates.get("refused"):
            lines.append("model updates: " + ", ".join(f"{k} {v}" for k, v in self.updates.items()))
        for name, values in self.metrics.items():
            lines.append(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
        return "\n".join(lines)


class _Scorer:
    """Per-frame PSNR and SSIM of vsa and of the bicubic baseline against a reference."""

    def __init__(self, reference: torch.Tensor | None) -> None:
        self.reference = reference
        self.rows: list[tuple[int, str, float, float, float, float]] = []

    def add(self, index: int, kind: str, frame: torch.Tensor, baseline: torch.Tensor | None) -> None:
        if self.reference is None or index >= len(self.reference):
            return
        ref = to_tensor(self.reference[index])
        # Score what the user gets: frames rounded to 8 bits, as written.
        ours = frame[None].clamp(0, 1).mul(255).round().div(255)
        row = [index, kind, float(psnr(ours, ref)), float(ssim(ours, ref)), float("nan"), float("nan")]
        if baseline is not None:  # INR-V streams have no low-res frames to upscale
            base = baseline[None].clamp(0, 1).mul(255).round().div(255)
            row[4:] = float(psnr(base, ref)), float(ssim(base, ref))
        self.rows.append(tuple(row))

    def summary(self) -> dict:
        out = {}
        groups = {"all": self.rows, **{k.value: [r for r in self.rows if r[1] == k.value] for k in Kind}}
        for name, rows in groups.items():
            if not rows:
                continue
            n = len(rows)
            out[name] = {
                "frames": n,
                "vsa_psnr": mean_psnr(torch.tensor([r[2] for r in rows])),
                "vsa_ssim": sum(r[3] for r in rows) / n,
            }
            if all(r[4] == r[4] for r in rows):  # not NaN: a bicubic baseline exists
                out[name]["bicubic_psnr"] = mean_psnr(torch.tensor([r[4] for r in rows]))
                out[name]["bicubic_ssim"] = sum(r[5] for r in rows) / n
        return out


def decode_file(
    path: str,
    output: str | None,
    iterations: int | None = None,
    output_fps: float | None = None,
    device: torch.device | str = "cpu",
    reference: str | None = None,
    back_project: str | None = None,
    frame_range: tuple[int, int] | None = None,
    progress: bool = False,
    on_frame: Callable[[OutputFrame], None] | None = None,
    size: tuple[int, int] | None = None,
) -> DecodeReport:
    """Decode a `.vsa` file, writing what is intact even if the file is damaged.

    ``frame_range`` = (first, end) restricts the metrics to those source frames.
    ``on_frame`` sees every output frame (the demo uses it for its side-by-side video).
    ``size`` renders an INR-V stream at another size. Returns a report whose
    ``error`` names the damage, if any.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f".vsa file not found: {path}")
    decoder = None
    reader = ContainerReader()
    report = DecodeReport(file_bytes=os.path.getsize(path))
    writer: VideoWriter | None = None
    scorer = _Scorer(None)
    bar = None

    def consume(frames) -> None:
        nonlocal writer
        for out in frames:
            if writer is None and output is not None:
                height, width = out.frame.shape[-2:]
                writer = VideoWriter(output, width, height, decoder.output_fps)
            if writer is not None:
                writer.write(to_uint8(out.frame[None])[0])
            if frame_range is None or frame_range[0] <= out.index < frame_range[1]:
                scorer.add(out.index, out.kind.value, out.frame, out.baseline)
            if on_frame is not None:
                on_frame(out)
            report.frames += 1
            if bar is not None:
                bar.update(1)

    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(READ_CHUNK)
                if chunk:
                    reader.feed(chunk)
                while (msg := reader.next_message()) is not None:
                    if decoder is None:
                        decoder = make_decoder(msg if isinstance(msg, Hello) else None, device, iterations,
                                               back_project, reference is not None, output_fps, size)
                    first = decoder.hello is None
                    consume(decoder.feed(msg))
                    if first and decoder.hello is not None:
                        h = decoder.hello
                        if reference is not None:
                            ref, _, _ = read_video(reference, size=getattr(decoder, "size", None) or (h.height, h.width),
                                                   limit=h.frame_count or None)
                            scorer = _Scorer(ref)
                        if progress:
                            from tqdm import tqdm

                            bar = tqdm(total=h.frame_count or None, desc="decoding", unit="frame", mininterval=1.0)
                if not chunk:
                    break
            reader.close()
            if decoder is None:
                raise ProtocolError("file holds no messages")
            if not decoder.ended:
                raise ProtocolError("stream ends without a bye message (file truncated?)")
    except (ProtocolError, bundle_mod.BundleError) as exc:
        report.error = str(exc)
        if decoder is not None:
            consume(decoder.finish(fill=False))
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    if decoder is None or decoder.hello is None:
        report.error = report.error or "file holds no stream header"
        return report
    h = decoder.hello
    report.counts = {k.value: n for k, n in decoder.counts.items()}
    report.fps, report.output_fps = h.fps, decoder.output_fps
    report.size = tuple(getattr(decoder, "size", None) or (h.height, h.width))
    report.payload_bytes = decoder.payload_bytes
    report.model_bytes = h.model_size
    report.source_frames = h.frame_count or round(report.frames * h.fps / decoder.output_fps)
    report.metrics = scorer.summary()
    if hasattr(decoder, "updates_applied"):
        report.updates = {"applied": decoder.updates_applied, "refused": decoder.updates_refused,
                          "version": decoder.model_version, "frames_off_version": decoder.version_misses}
    return report
