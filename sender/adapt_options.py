"""The options of online adaptation (`vsa.sender.adapt`), kept free of torch so `--help` stays quick."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

LIVE_DUTY = 1.0
"""The live trainer's default share of the time (`AdaptSettings.duty`). It runs in a process of its own at a lower
priority, so it need not rest for the stream's sake: at 1.0 and 0.5 the office session streamed at the same
median latency (86 ms, README "Online adaptation"), and 1.0 trained twice the steps. Lower it to leave CPU to
other programs."""
MIN_BUFFER = 8
"""Fewest frames the adapter's buffer may hold: it trains on some and judges updates on the newest."""


@dataclass(frozen=True)
class AdaptSettings:
    every: float = 2.0
    """Seconds of stream between two considered updates."""
    steps: int = 200
    """Adam steps per considered update (a step budget, so file mode is reproducible)."""
    share: float = 0.10
    """Most of the stream's bits that updates may take, counted from the start."""
    buffer: int = 96
    """Recent sent frames kept to train on."""
    sample: int = 2
    """Keep every n-th sent frame in the buffer: a longer memory for the same size (96 frames, every 2nd:
    6.4 s at 30 fps; against 48 consecutive ones, the same gain on the office session at crf 28)."""
    batch: int = 8
    """Crops per step."""
    lr: float = 2e-3
    seed: int = 0
    threads: int = 1
    """Torch threads the trainer may use (0: leave torch's setting)."""
    duty: float = 1.0
    """Share of the time the trainer may compute: after each step it rests for as long as the step took times
    (1 / duty - 1). 1 in file mode; live, the capture, coding and sending must keep their share of the CPU."""

    def __post_init__(self) -> None:
        if not self.every > 0:
            raise ValueError(f"adapt-every must be positive, got {self.every}")
        if not 1 <= self.steps <= 100_000:
            raise ValueError(f"adapt-steps must be in [1, 100000], got {self.steps}")
        if not 0 < self.share < 1:
            raise ValueError(f"the update share must be in (0, 1), got {self.share}")
        if not 0 < self.duty <= 1:
            raise ValueError(f"adapt-duty must be in (0, 1], got {self.duty}")
        if not MIN_BUFFER <= self.buffer <= 4096:
            raise ValueError(f"the adaptation buffer must hold {MIN_BUFFER} to 4096 frames, got {self.buffer}")


def add_arguments(parser, live: bool, switch: bool = True) -> None:
    """The ``--adapt`` options of `vsend` (on by default) and `vsa encode` (off: a file adapting takes minutes).

    ``switch=False`` leaves out ``--adapt`` itself (`vsa eval`, whose online mode always adapts).
    """
    defaults = AdaptSettings()
    if not switch:
        parser.add_argument("--adapt-seed", type=int, default=defaults.seed, help="default: %(default)s")
    elif live:
        parser.add_argument("--adapt", action=argparse.BooleanOptionalAction, default=True,
                            help="keep fine-tuning the model on the frames just sent and stream weight updates that "
                            "earn their bits, in a process of its own at a lower priority. On by default for models "
                            "that can adapt (the shipped base and models fine-tuned from it; an autoencoder or INR-V "
                            "stream does not); it costs about 15 ms of latency on a 2-core CPU (README, Online "
                            "adaptation). --no-adapt turns it off")
        parser.add_argument("--adapt-threads", type=int, default=defaults.threads,
                            help=f"CPU threads the trainer may use (default: {defaults.threads})")
        parser.add_argument("--adapt-duty", type=float, default=LIVE_DUTY, metavar="F",
                            help="share of the time the trainer may compute; it rests the rest, leaving the CPU to "
                            "other programs (default: %(default)s)")
    else:
        parser.add_argument("--adapt", action="store_true",
                            help="fine-tune the model on the video as it is coded and interleave weight updates "
                            "in the file (on a step budget: reproducible for a given --adapt-seed)")
        parser.add_argument("--adapt-seed", type=int, default=defaults.seed, help="default: %(default)s")
    parser.add_argument("--adapt-every", type=float, default=defaults.every, metavar="S",
                        help="seconds of video between considered updates (default: %(default)s)")
    parser.add_argument("--adapt-steps", type=int, default=defaults.steps, metavar="N",
                        help="training steps per considered update (default: %(default)s)")
    parser.add_argument("--adapt-share", type=float, default=defaults.share, metavar="F",
                        help="most of the stream's bits that updates may take (default: %(default)s)")


def settings_from(args) -> AdaptSettings:
    """The `AdaptSettings` the options of `add_arguments` ask for (ValueError names a bad one)."""
    return AdaptSettings(every=args.adapt_every, steps=args.adapt_steps, share=args.adapt_share,
                         seed=getattr(args, "adapt_seed", 0), threads=getattr(args, "adapt_threads", 1),
                         duty=getattr(args, "adapt_duty", 1.0))
