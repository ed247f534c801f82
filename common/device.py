"""Choice of compute device: cuda, then mps, then cpu."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """Resolve a --device flag; raise ValueError with a clear message if it is unavailable."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU")
    if name == "mps" and not has_mps:
        raise ValueError("--device mps was asked for, but MPS is not available")
    return torch.device(name)


LIVE_THREADS = 1
"""torch's CPU threads in `vsend` and `vrecv` unless ``--threads`` says otherwise.

Measured on the 2-core VM (office session, 256x320, stride 2, both ends on loopback): with torch's default (a
thread per core) any other load stalls the stream, because every parallel operation waits for a core that load
holds: a single busy loop at ``nice 10`` took the median latency from 72 ms to 1484 ms. With one thread per end
it went from 75 ms to 83 ms. One thread is also enough for either end at 30 fps on this CPU.
"""


def add_threads_argument(parser) -> None:
    """``--threads`` for the live commands (`LIVE_THREADS`)."""
    parser.add_argument("--threads", type=int, default=LIVE_THREADS, metavar="N",
                        help=f"CPU threads torch may use (default: {LIVE_THREADS}: more let any other load on the "
                        "machine stall the stream; see the README, Streaming)")


def set_threads(count: int) -> None:
    """Bound torch's intra-op CPU threads (ValueError for fewer than 1)."""
    if count < 1:
        raise ValueError(f"--threads {count}: at least 1")
    torch.set_num_threads(count)
