"""`vsa bench soak`: a long looped stream between `vrecv` and `vsend` as two processes on loopback.

What a long-running service must not do is grow: this samples each
process's resident memory, open file descriptors and threads (from
``/proc``, so Linux only) every few seconds, takes the figures once the
stream has warmed up and again at the end, and reads the receiver's stats
lines for frames received and lost and the latency, minute by minute. The
baseline in the same run is the warm-up sample itself: memory growth is
reported against it (the README's bar is under 10%).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from vsa.common.assets import DEFAULT_CLIP
from vsa.common.webrtc import free_port

SAMPLE_EVERY = 5.0
WARM_UP = 0.1
"""Share of the run (at least 30 s, at most 60 s) after which memory is taken as the baseline."""
STATS_LINE = re.compile(r"received (\d+), interpolated (\d+), concealed (\d+), lost (\d+) \| latency (\d+) ms")


@dataclass
class Sample:
    seconds: float
    rss_mb: float
    fds: int
    threads: int


@dataclass
class ProcessFigures:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def at(self, seconds: float) -> Sample | None:
        """The first sample at or after ``seconds``."""
        return next((s for s in self.samples if s.seconds >= seconds), None)


def sample(pid: int, since: float) -> Sample | None:
    """RSS, open file descriptors and threads of process ``pid`` from /proc; None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields.get("VmRSS", "0 kB").split()[0])
    return Sample(round(time.monotonic() - since, 1), round(rss_kb / 1024, 1), fds, int(fields["Threads"]))


def soak(video: str, minutes: float, size: str, stride: int, adapt: bool, log_dir: Path) -> dict:
    """Run the stream for ``minutes`` and return the figures (see the module docstring)."""
    from vsa.common.video import VideoSource

    with VideoSource(video) as source:
        fps = source.info.fps
    frames = max(2, round(minutes * 60 * fps))
    port = free_port()
    python = [sys.executable, "-m"]
    recv_log, send_log = log_dir / "soak_vrecv.log", log_dir / "soak_vsend.log"
    started = time.monotonic()
    with open(recv_log, "w") as rlog, open(send_log, "w") as slog:
        receiver = subprocess.Popen(python + ["vsa.receiver.cli", "--listen", f"127.0.0.1:{port}", "--sessions", "1",
                                             "--no-cache", "--idle-timeout", "30"], stdout=rlog, stderr=subprocess.STDOUT)
        sender = subprocess.Popen(python + ["vsa.sender.cli", video, "--connect", f"127.0.0.1:{port}", "--size", size,
                                            "--stride", str(stride), "--loop", "--limit", str(frames), "--timeout", "60",
                                            "--adapt" if adapt else "--no-adapt"],
                                  stdout=slog, stderr=subprocess.STDOUT)
        figures = {"vrecv": ProcessFigures("vrecv"), "vsend": ProcessFigures("vsend")}
        deadline = started + minutes * 60 + 120  # the stream, plus start-up and wind-down
        try:
            # Sampled while both stream: the last sample is the stream's end, not a process winding down.
            while receiver.poll() is None and sender.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the soak did not end within {deadline - started:.0f} s")
                for name, proc in (("vrecv", receiver), ("vsend", sender)):
                    if (s := sample(proc.pid, started)) is not None:
                        figures[name].samples.append(s)
                time.sleep(SAMPLE_EVERY if minutes >= 1 else 1.0)
            for proc in (sender, receiver):
                proc.wait(max(1.0, deadline - time.monotonic()))
        finally:
            for proc in (sender, receiver):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
    seconds = time.monotonic() - started
    warm = min(60.0, max(30.0, WARM_UP * seconds)) if minutes >= 1 else 0.5 * seconds
    result: dict = {"video": Path(video).name, "minutes": minutes, "frames": frames, "size": size, "stride": stride,
                    "adapt": adapt, "seconds": round(seconds, 1), "warm_up_s": round(warm, 1),
                    "exit_codes": {"vrecv": receiver.returncode, "vsend": sender.returncode}}
    for name, f in figures.items():
        # The end is taken 10 s before the last sample: by then the stream is still running at full rate.
        tail = [x for x in f.samples if x.seconds <= f.samples[-1].seconds - 10] if minutes >= 1 else f.samples
        first, last = f.at(warm), (tail[-1] if tail else None)
        entry: dict = {"samples": len(f.samples)}
        if first is not None and last is not None:
            entry.update(rss_warm_mb=first.rss_mb, rss_end_mb=last.rss_mb,
                         rss_growth_pct=round(100 * (last.rss_mb - first.rss_mb) / first.rss_mb, 1),
                         rss_peak_mb=max(s.rss_mb for s in f.samples),
                         fds_warm=first.fds, fds_end=last.fds, threads_warm=first.threads, threads_end=last.threads)
        result[name] = entry
    stats = [tuple(map(int, m.groups())) for m in STATS_LINE.finditer(recv_log.read_text())]
    if stats:
        received, _, concealed, lost, _ = stats[-1]
        latencies = [row[4] for row in stats]
        per_minute = [round(statistics.median(latencies[i:i + 60])) for i in range(0, len(latencies), 60)]
        result["stream"] = {"received": received, "concealed": concealed, "lost": lost,
                            "latency_median_ms": statistics.median(latencies),
                            "latency_median_ms_per_minute": per_minute}
    sent = re.search(r"(\d+) frames captured, (\d+) sent", send_log.read_text())
    if sent:
        result.setdefault("stream", {})["sent"] = int(sent.group(2))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vsa bench soak", description=__doc__.split("\n\n")[0])
    p.add_argument("video", nargs="?", default=str(DEFAULT_CLIP), help="looped for the whole run (default: the "
                   "bundled clip)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the stream (default: %(default)s)")
    p.add_argument("--size", default="128x192", help="working size HxW (default: %(default)s)")
    p.add_argument("--stride", type=int, default=2, help="default: %(default)s")
    p.add_argument("--adapt", action="store_true", help="the sender adapts online (its trainer process runs)")
    p.add_argument("-o", "--output", default="bench_soak.json")
    args = p.parse_args(argv)
    if not Path("/proc/self/status").exists():
        raise ValueError("vsa bench soak reads /proc: it runs on Linux only")
    out = Path(args.output)
    result = soak(args.video, args.minutes, args.size, args.stride, args.adapt, out.resolve().parent)
    for name in ("vrecv", "vsend"):
        r = result[name]
        if "rss_warm_mb" in r:
            print(f"{name}: RSS {r['rss_warm_mb']} MB after warm-up, {r['rss_end_mb']} MB at the end "
                  f"({r['rss_growth_pct']:+.1f}%), peak {r['rss_peak_mb']} MB; fds {r['fds_warm']} -> {r['fds_end']}; "
                  f"threads {r['threads_warm']} -> {r['threads_end']}")
    stream = result.get("stream", {})
    print(f"stream: {stream.get('sent', '?')} sent, {stream.get('received', '?')} received, "
          f"{stream.get('lost', '?')} lost; latency median by minute {stream.get('latency_median_ms_per_minute')} ms; "
          f"exit codes {result['exit_codes']}")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0 if all(code == 0 for code in result["exit_codes"].values()) else 1
