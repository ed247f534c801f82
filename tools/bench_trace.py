"""`vsa bench stream --link`: a stream under a target through an emulated link whose rate follows a trace.

The sender (`--kbps`, congestion control on) and the receiver run in one
process on loopback; every datagram of the connection crosses a `Link`
(`vsa.common.link`) whose rate changes on schedule, by default 300, then
60, then 300 kbps for 15 s each. It prints and writes, per second, the link
rate, the rate sent and the target, the receiver's latency; and in all, the
p95 latency, frames lost, the longest display gap, PSNR per segment of the
trace, and the times the issue's goals are about:

* how long after the drop the sent rate fell below the link rate;
* how long after the rise it came back within 20% of the higher rate, and
  within 20% of what it sent before the drop (over 3 s): a stream may need
  less than the link gives.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace

import numpy as np

from vsa.common.link import LinkSpec

DEFAULT_TRACE = "300k:15,60k:15,300k:15"


def parse_trace(text: str) -> list[tuple[float, float]]:
    """``300k:15,60k:15`` -> [(rate in bits per second, seconds), ...]."""
    segments = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        rate, _, seconds = part.partition(":")
        spec = LinkSpec.parse(f"rate={rate}")
        try:
            duration = float(seconds)
        except ValueError:
            raise ValueError(f"bad trace segment {part!r}: RATE:SECONDS, e.g. 300k:15") from None
        if spec.rate_bps <= 0 or not 0 < duration <= 600:
            raise ValueError(f"bad trace segment {part!r}: a positive rate for 0 to 600 s")
        segments.append((spec.rate_bps, duration))
    if not segments:
        raise ValueError("an empty trace")
    return segments


async def _sample(sender, samples: list[tuple[float, int, int, int, int]]) -> None:
    """Once a second: (time, bytes in the link's queue, bytes waiting in the sender's media channel, bytes sent
    into the link since the last sample, media, control and every protocol's headers, and in how many datagrams)."""
    offered = count = 0
    while True:
        await asyncio.sleep(1.0)
        if sender.links and sender.media is not None:
            now = time.monotonic()
            link = sender.links[0]
            samples.append((now - sender._started, int(link.queued_bytes(now)), sender.media.bufferedAmount,
                            link.bytes_offered - offered, link.sent - count))
            offered, count = link.bytes_offered, link.sent


async def _drive(sender, trace: list[tuple[float, float]], marks: list[float]) -> None:
    """Set the sender's links to each segment's rate on schedule; ``marks`` gets each change's time."""
    while not sender.links:
        await asyncio.sleep(0.01)
    for rate, seconds in trace:
        marks.append(time.monotonic() - sender._started)
        for link in sender.links:
            link.set_rate(rate)
        await asyncio.sleep(seconds)


def psnr_per_frame(output: str, source: str, size: tuple[int, int]) -> np.ndarray:
    from vsa.common.metrics import psnr
    from vsa.common.resample import to_tensor
    from vsa.common.video import read_video

    out, _, _ = read_video(output)
    ref, _, _ = read_video(source, size=size)
    idx = np.arange(len(out)) % len(ref)  # the source loops
    values = []
    for start in range(0, len(out), 64):
        chunk = slice(start, start + 64)
        values.append(psnr(to_tensor(out[chunk]), to_tensor(ref[idx[chunk]])).numpy())
    return np.concatenate(values) if values else np.zeros(0)


async def run_trace(model_path: str | None, clip: str, size: tuple[int, int], kbps: float, link: LinkSpec,
                    trace: list[tuple[float, float]], output: str, fps: float, stride: int | None = None,
                    transit_target_ms: float | None = None) -> dict:
    from vsa.common import webrtc
    from vsa.receiver.cache import ModelCache
    from vsa.receiver.live import ReceiverOptions, serve
    from vsa.sender.live import LiveSender, SenderOptions
    from vsa.sender.stream import StreamSettings

    total = sum(s for _, s in trace)
    server = webrtc.SignalingServer("127.0.0.1", 0)
    await server.start()
    marks: list[float] = []
    with tempfile.TemporaryDirectory() as cache:
        options = ReceiverOptions(listen=("127.0.0.1", server.port), cache=ModelCache(cache), output=output)
        receiving = asyncio.create_task(serve(options, server=server))
        sender = LiveSender(model_path, clip, SenderOptions(
            connect=("127.0.0.1", server.port), bind="127.0.0.1", size=size, loop=True,
            limit=int(total * fps), link=replace(link, rate_bps=trace[0][0]), adapt=None,
            settings=StreamSettings(scale=4, stride=stride or 2, kbps=kbps), ladder=(True, stride is None),
            transit_target_ms=transit_target_ms))
        driving = asyncio.create_task(_drive(sender, trace, marks))
        samples: list[tuple[float, int, int, int, int]] = []
        sampling = asyncio.create_task(_sample(sender, samples))
        try:
            await sender.run()
            (report,) = await asyncio.wait_for(receiving, 60)
        finally:
            driving.cancel()
            sampling.cancel()
            await server.close()
    return {"sender": sender, "receiver": report, "marks": marks, "samples": samples}


def summarise(result: dict, trace: list[tuple[float, float]], psnr: np.ndarray, fps: float) -> dict:
    """The figures of one run, against the trace."""
    sender, report, marks = result["sender"].report, result["receiver"], result["marks"]
    start = marks[0] if marks else 0.0
    bounds = [start + sum(s for _, s in trace[:i]) for i in range(len(trace) + 1)]

    def link_at(t: float) -> float:
        for (rate, _), lo, hi in zip(trace, bounds, bounds[1:]):
            if lo <= t < hi:
                return rate / 1000
        return trace[-1][0] / 1000

    seconds = [{"t": round(t - start, 1), "link_kbps": link_at(t - 0.5), "sent_kbps": kbps}
               for t, kbps in sender.sent_kbps]
    targets = dict((round(t - start), k) for t, k in sender.targets)
    for row in seconds:
        row["target_kbps"] = targets.get(round(row["t"]))
    # The receiver reports once a second, and sooner while a queue builds: each row takes the last report
    # made by its time.
    stats = sorted(sender.receiver_stats, key=lambda s: s["at_s"])
    for row in seconds:
        made = [s for s in stats if s["at_s"] - start <= row["t"] + 0.05]
        if not made:
            continue
        s = made[-1]
        row["latency_ms"] = round(s.get("latency_ms", 0.0), 1)
        row["delay_trend"] = round(s.get("delay_trend", 0.0), 1)
        row["loss"] = round(s.get("loss", 0.0), 3)
        row["queue_delay_ms"] = round(s.get("queue_delay", 0.0), 1)
    for row in seconds:
        near = [q for q in result.get("samples", ()) if abs(q[0] - start - row["t"]) <= 0.5]
        if near:
            row["link_queue_bytes"], row["sender_buffered_bytes"] = near[0][1], near[0][2]
            row["into_link_kbps"] = round(near[0][3] * 8 / 1000, 1)
            row["into_link_datagrams"] = near[0][4]
    figures: dict = {"seconds": seconds, "bounds": [round(b - start, 2) for b in bounds]}
    # The goals: after each drop, when the sent rate first fell below the link; after each rise, when it came
    # back within 20% of the new rate.
    events = []
    for i in range(1, len(trace)):
        before, after = trace[i - 1][0] / 1000, trace[i][0] / 1000
        change = bounds[i] - start
        later = [r for r in seconds if r["t"] > change]
        if after < before:
            hit = next((r["t"] for r in later if r["sent_kbps"] < after), None)
            events.append({"at_s": round(change, 1), "drop_kbps": [before, after],
                           "below_link_after_s": round(hit - change, 1) if hit is not None else None})
        else:
            hit = next((r["t"] for r in later if r["sent_kbps"] >= 0.8 * after), None)
            event = {"at_s": round(change, 1), "rise_kbps": [before, after],
                     "within_20pct_after_s": round(hit - change, 1) if hit is not None else None}
            # A stream may need less than the link gives (this clip at 192x256 sends about 57 kbps of 300): also
            # when its rate, over 3 s, came back within 20% of what it sent before, at a link rate as high.
            earlier = [j for j in range(i - 1) if trace[j][0] >= trace[i][0]]
            if earlier:
                lo, hi = bounds[earlier[-1]] - start, bounds[earlier[-1] + 1] - start
                used = [r["sent_kbps"] for r in seconds if lo + 2 <= r["t"] < hi]
                if used:
                    mean = sum(used) / len(used)
                    back = next((a["t"] for a, b, c in zip(later, later[1:], later[2:])
                                 if (a["sent_kbps"] + b["sent_kbps"] + c["sent_kbps"]) / 3 >= 0.8 * mean), None)
                    event.update(before_kbps=round(mean, 1),
                                 back_within_20pct_after_s=round(back - change, 1) if back is not None else None)
            events.append(event)
    figures["events"] = events
    gaps = sorted(report.display_gaps_ms)
    figures.update(
        frames=report.frames, lost=report.lost, latency_median_ms=round(report.latency(0.5), 1),
        latency_p95_ms=round(report.latency(0.95), 1), longest_gap_ms=round(gaps[-1], 1) if gaps else None,
        skipped_frames=sender.skipped_budget, skipped_for_keyframe=sender.skipped_for_keyframe,
        keyframe_requests=sender.keyframe_requests, drains=sender.drains,
        media_kbps=round(sender.media_bytes * 8 / 1000 / max(sender.seconds, 1e-9), 1),
    )
    # PSNR per segment of the trace, output frame i being source frame i (the output runs at the source's rate).
    segment_psnr = []
    for (rate, seconds_), lo, hi in zip(trace, bounds, bounds[1:]):
        a, b = int((lo - start) * fps), int((hi - start) * fps)
        part = psnr[a:b]
        segment_psnr.append({"link_kbps": rate / 1000, "frames": int(len(part)),
                             "psnr": round(float(part.mean()), 2) if len(part) else None})
    figures["segments"] = segment_psnr
    return figures


def plot(figures: dict, path: str) -> None:
    """Sent rate, target and link rate over time, with PSNR per segment, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = figures["seconds"]
    t = [r["t"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.step(t, [r["link_kbps"] for r in rows], where="post", label="link", color="black")
    ax.plot(t, [r["sent_kbps"] for r in rows], label="sent", color="tab:blue")
    ax.plot(t, [r["target_kbps"] if r["target_kbps"] is not None else np.nan for r in rows], label="target",
            color="tab:orange", linestyle="--")
    ax.set_xlabel("seconds")
    ax.set_ylabel("kbps")
    right = ax.twinx()
    for i, seg in enumerate(figures["segments"]):
        if seg["psnr"] is not None:
            lo, hi = figures["bounds"][i], figures["bounds"][i + 1]
            right.hlines(seg["psnr"], lo, hi, colors="tab:green")
    right.set_ylabel("PSNR (dB)", color="tab:green")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
