"""Holding a stream to a target bitrate by choosing the payload's quality, one group of pictures at a time.

`vsend --kbps` and `vsa encode --kbps` give a target for the whole stream:
payload, frame headers, model updates and the model itself.
`BitrateKeeper` counts everything sent and, before each keyframe, picks the
crf of the group of pictures that starts there:

* what the group may spend is the target, less the model's bytes spread over
  the stream (over its length when known, else over `FIXED_SPREAD_S`), less
  what frame headers and updates took over the last group, plus or minus
  what the stream is behind or ahead of its budget so far, repaid over
  two groups (at least `PAYBACK_S`);
* the crf moves from the last group's by the codec's crf steps per halving
  of the rate (`CRF_PER_HALVING`) times log2(delivered / wanted), by at
  most `MAX_CRF_STEP`.

Why not the codecs' own rate control: FFmpeg's x264 and libvpx wrappers take
no new rate mid-stream, and libvpx's CBR at these sizes and frame rates
missed by far (asked for 60 kbps at 128x224 and 7.5 frames a second, it
delivered 29; x264 CBR delivered 57). Constant quality within a group also
suits the receiver's network, which is conditioned on the payload's crf.

It is sans-I/O: it sees byte counts and presentation times, nothing else,
so a test can drive it with made-up numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vsa.common.framecodec import default_crf

FIXED_SPREAD_S = 60.0
"""Seconds a stream of unknown length (a camera) is taken to last when its model's bytes are spread over it."""
PAYBACK_S = 2.0
"""Seconds over which the stream repays what it spent over (or under) its budget."""
CRF_PER_HALVING = {"h264": 6.0, "vp9": 12.0}
"""crf steps that halve a payload's rate: x264's rule of thumb; for vp9 at scale 4 the eval points gave 15 to
20, and a smaller step overshoots less."""
MAX_CRF_STEP = 12
"""The most one group's crf may differ from the last: one group's rate is a noisy guide (a scene cut, a still
scene), and a jump of 20 overshot the other way."""
CRF_RANGE = {"h264": (10, 51), "vp9": (10, 63)}
"""The crfs the keeper may choose (below 10 the low-res frames are near-lossless: bits better spent on a finer
rung of the ladder)."""
LIVE_CRF_FLOOR = {"h264": 15, "vp9": 20}
"""Live at the finest rung the stream may take (`BitrateKeeper.finest`), the lowest crf: with no finer rung to
spend them on, the bits are better left unspent (below it, a finer rung spends them better, and a stream held
at this crf on a coarse rung could not use the target it needs to move up). On a free 300 kbps link
(192x256, the shipped base, the top rung) vp9 at crf 10 sent 104 kbps for 34.43 dB, at 20 60 kbps for 34.20, at
30 39 kbps for 33.65: the last 0.2 dB cost 70% more rate, its 7.9 KB keyframes read as congestion, and a link
that fell found twice the queue. h264's is the crf of the same low-res PSNR (`vsa.common.framecodec.model_crf`)."""
PAYLOAD_SHARE = 0.9
"""Live, the share of a new target the crf chosen at once aims its payload at (frame headers take the rest)."""
MIN_MEASURE_S = 0.5
"""Seconds a group must have run before its rate is read for a new target's crf."""
DEBT_CAP_S = 1.0
"""Live: the most debt, in seconds of the target, a stream carries; older overspending is forgiven."""
SKIP_DEBT_S = 0.5
"""Seconds of the target a stream may run over its budget before frames are skipped."""
KEYFRAME_SECONDS = {"file": 2.0, "live": 20.0}
"""Keyframe spacing under a target: the quality can change only there. A file's must come often enough to follow
(60 sent frames at stride 4 would be 8 s), and a file of 10 s needs several groups to steer by. Live, this is the
longest: a group ends early (`BitrateKeeper.group_due`) when the target moves a halving, or when after
`REFRESH_S` the crf is half a halving off what the target wants; skipping frames (`BitrateKeeper.behind`) holds
the rate meanwhile. Every keyframe is the largest frame there is: at 30-40 kbps a 96x128 one of 4-5 KB took 0.7 s
to cross a 60 kbps link, a 0.9-s freeze, every 4 s when groups were that long."""
COST_MEASURE_S = 2.0
"""Seconds a group must have run before what it delivers says what the clip costs (`BitrateKeeper.cost_ratio`):
its keyframe weighs less then."""
STARVED = 0.75
"""A group delivering less than this share of what the target leaves the payload, at a crf within half a halving
of its floor, is starved (`BitrateKeeper.starved`)."""
MAX_COST_RATIO = 4.0
"""The furthest a clip's cost is taken to be from the ladder's, either way."""
REFRESH_S = 4.0
"""Live: seconds a group runs before its crf may be corrected by a new group (not just after a target's move)."""
KEYFRAME_CROSSING_S = 0.25
"""Live: a keyframe may take this many seconds of the target (`BitrateKeeper.keyframe_bytes`). Every frame behind
it waits while it crosses: uncapped, the first keyframe after a link fell to 60 kbps (4.5 KB at 96x128) froze
the picture for 0.6 s, on top of the pause that drained the queue."""


def keyint_for(fps: float, stride: int, keyint: int, live: bool = False) -> int:
    """Sent frames between keyframes under a target: for a file ``keyint``, or fewer so that one comes every
    `KEYFRAME_SECONDS` (at least 8 frames: every keyframe costs several inter frames' bits); live, one every
    `KEYFRAME_SECONDS` at most (groups end early when the crf must change)."""
    per_group = max(8, round(KEYFRAME_SECONDS["live" if live else "file"] * fps / stride))
    return per_group if live else min(keyint, per_group)


@dataclass
class BitrateKeeper:
    """Picks each group's crf so that the stream's total rate meets ``target_bps``."""

    target_bps: float
    fps: float
    """Source frames per second (pts are source frame indices)."""
    codec: str
    crf: int
    """The first group's crf (the ladder's rungs were measured at the codec's default)."""
    fixed_bytes: int = 0
    """Sent once, up front: the hello and any model blobs."""
    frame_count: int = 0
    """The stream's length in source frames when known (a file), else 0."""
    live: bool = False
    """Sent as it is coded, over a network: keyframes are capped (`keyframe_bytes`)."""
    copies: int = 1
    """Live: how many times each frame goes out (2 while forward error correction repeats every frame; the sender
    says, as it turns it on and off). A new target's crf is reckoned for the payload's share of it over this: with
    every frame sent twice, a crf for the whole share put twice the target on the path, and up to 41% of the sent
    frames were skipped to keep to it on the lossy 60 kbps link, each one's neighbours waiting for the next."""
    finest: bool = True
    """The stream is at the finest rung of the ladder it may take (the sender says, as it moves): live, the crf
    stops at `LIVE_CRF_FLOOR`."""

    def __post_init__(self) -> None:
        if not self.target_bps > 0:
            raise ValueError(f"the target bitrate must be positive, got {self.target_bps}")
        if self.codec not in CRF_PER_HALVING:
            raise ValueError(f"a target bitrate needs an inter codec ({' or '.join(CRF_PER_HALVING)}), "
                             f"not {self.codec}")
        if self.stream_bps < 0.1 * self.target_bps:
            raise ValueError(
                f"a target of {self.target_bps / 1000:.1f} kbps leaves the frames almost nothing once the model "
                f"({self.fixed_bytes / 1024:.1f} KiB over {self.spread_s:.0f} s) is paid for; raise --kbps")
        self.payload_bytes = 0
        self.other_bytes = 0
        """Frame headers, model updates, and anything else sent after the start."""
        self._budget_bits = 0.0
        self._budget_at = 0.0
        """The stream's budget (bits it may have sent) as of ``_budget_at`` seconds: targets change live."""
        self._group: tuple[float, int, int] | None = None
        self._frames = [0, 0]
        """Frames of the current group sent, and skipped while over budget (`skipped`)."""
        """(start in seconds, payload bytes, other bytes) when the current group began."""
        self.history: list[tuple[float, int, float]] = []
        """(start in seconds, crf, payload kbps delivered) for each finished group."""
        self._rate_scale = 1.0
        """The rate of the rung the stream is at against that of the rung the current group began at."""
        self._group_crf = self.crf
        """The crf the current group is coded at."""
        self._group_target = self._payload_bps
        """What the target left the payload when the current group began: only a move of a halving from it starts
        a new one at once (not a rate that differs from the target, which a still scene or the ladder's floor makes
        lasting: that waits for `REFRESH_S`)."""
        self.group_due = False
        """Live: the target moved by a halving or more since the group began, or the group has run `REFRESH_S`
        at a crf half a halving off; a new group (a keyframe at the crf already chosen) should start at the
        next frame sent."""

    @property
    def keyframe_bytes(self) -> int:
        """Live, the most a keyframe should take: `KEYFRAME_CROSSING_S` of the target (0: no cap, a file)."""
        return int(KEYFRAME_CROSSING_S * self.target_bps / 8) if self.live else 0

    @property
    def spread_s(self) -> float:
        return self.frame_count / self.fps if self.frame_count > 0 else FIXED_SPREAD_S

    @property
    def stream_bps(self) -> float:
        """What the target leaves for everything but the model: frames, headers, updates."""
        return max(0.0, self.target_bps - self.fixed_bytes * 8 / self.spread_s)

    def budget_bits(self, now: float) -> float:
        """Bits the stream (all but the model) may have sent by ``now`` seconds."""
        return self._budget_bits + self.stream_bps * max(0.0, now - self._budget_at)

    def debt_bits(self, now: float) -> float:
        """Bits sent beyond the budget by ``now`` (negative: credit). A stream of unknown length keeps at most
        `PAYBACK_S` of credit (what a camera saved on a still scene must not come out as a burst later) and
        `DEBT_CAP_S` of debt (after the network's rate fell, the frames sent before at the old rate are not
        to be paid for by a long freeze now)."""
        debt = (self.payload_bytes + self.other_bytes) * 8 - self.budget_bits(now)
        if self.frame_count <= 0:
            bounded = min(DEBT_CAP_S * self.stream_bps, max(-PAYBACK_S * self.stream_bps, debt))
            self._budget_bits += debt - bounded
            debt = bounded
        return debt

    def retarget(self, target_bps: float, now: float) -> None:
        """A new target from ``now`` seconds on (the congestion controller's, live).

        A lower target also forfeits any credit: what a quiet stream saved at the old rate is not the
        network's to give once it has shrunk. Kept, up to 2 s of the new target went out at the old rate
        straight after a drop (measured: 137 kbps sent the second after the target fell to 44).
        """
        budget = self.budget_bits(now)
        if target_bps < self.target_bps:
            budget = min(budget, (self.payload_bytes + self.other_bytes) * 8.0)
        self._budget_bits, self._budget_at = budget, max(self._budget_at, now)  # a drain (`drain`) runs on
        self.target_bps = max(1.0, target_bps)
        # A new group at once when the target moved a halving or more from what this crf delivers: after a
        # link fell to a fifth, the old crf made every inter frame several times what the target allowed, and
        # only skipping kept to it until the next keyframe, seconds away (and then the crf could move only
        # `MAX_CRF_STEP` a group). The crf moves by its steps per halving of the rate.
        delivered = self._delivered_bps(now)
        if delivered:
            halving = CRF_PER_HALVING[self.codec]
            # Reckoned from the crf that delivered it (a second new target before the new group has begun must
            # not move the crf again for the same rate), and up the rate by at most one halving's steps at once:
            # a keyframe at a much lower crf is the largest frame there is (8 KB at 96x128, a second of a
            # 60 kbps link).
            shift = max(-halving, halving * math.log2(delivered / self._payload_bps))
            crf = self._in_range(self._group_crf + shift)
            moved = abs(math.log2(self._payload_bps / self._group_target)) >= 1 and abs(shift) >= halving
            aged = self._group is not None and now - self._group[0] >= REFRESH_S
            if (moved or aged) and abs(crf - self._group_crf) >= halving / 2:
                self.crf, self.group_due = crf, True
            elif self.group_due:
                self.crf = crf  # the new group not begun yet: at the crf for the latest target

    @property
    def _payload_bps(self) -> float:
        """What the target leaves the payload, live (`PAYLOAD_SHARE` of it, over the ``copies`` sent)."""
        return PAYLOAD_SHARE * self.stream_bps / max(1, self.copies)

    @property
    def _crf_floor(self) -> int:
        """The lowest crf the keeper may choose: the codec's `CRF_RANGE`'s, live at the finest rung
        `LIVE_CRF_FLOOR`."""
        return LIVE_CRF_FLOOR[self.codec] if self.live and self.finest else CRF_RANGE[self.codec][0]

    def _in_range(self, crf: float) -> int:
        """``crf`` rounded, from `_crf_floor` to the top of the codec's `CRF_RANGE`."""
        return int(min(CRF_RANGE[self.codec][1], max(self._crf_floor, round(crf))))

    def rescaled(self, ratio: float) -> None:
        """The stream moved to a rung of the ladder whose rate, at the same crf, is ``ratio`` times the last's
        (`vsa.sender.ladder`): what this group delivered so far says that much less (or more) of the next."""
        self._rate_scale *= ratio

    def _delivered_bps(self, now: float) -> float | None:
        """The payload rate the current crf gives at the current rung: over this group if it has run
        `MIN_MEASURE_S`, else the last group's (None: not known yet)."""
        if self._group is not None and now - self._group[0] >= MIN_MEASURE_S:
            rate = self._group_bps(now)
        elif self.history:
            rate = self.history[-1][2] * 1000
        else:
            return None
        return rate * self._rate_scale if rate > 0 else None

    def starved(self, now: float) -> bool:
        """The crf is within half a halving of the low end of its range and the current group still delivers less
        than `STARVED` of what the target leaves the payload: this rung cannot use the target (a finer one
        could)."""
        if self._group is None or now - self._group[0] < COST_MEASURE_S:
            return False
        return (self._group_crf <= self._crf_floor + CRF_PER_HALVING[self.codec] / 2
                and self._group_bps(now) * self._rate_scale < STARVED * self._payload_bps)

    def cost_ratio(self, rung_kbps: float, now: float) -> float | None:
        """What this clip costs against the ladder's median clip: the payload rate the current group delivers at
        its crf over what the ladder says the current rung costs there (``rung_kbps`` at the codec's default
        crf, halved every `CRF_PER_HALVING` steps above it), within `MAX_COST_RATIO` either way (None before
        the group has run `COST_MEASURE_S`). The signing clip at 96x128 costs about half the median: by the
        ladder's rates alone, a stream on a 60 kbps link held a stride it could not fill, and with it a target
        it could not raise."""
        if self._group is None or now - self._group[0] < COST_MEASURE_S or rung_kbps <= 0:
            return None
        delivered = self._group_bps(now) * self._rate_scale
        if delivered <= 0:
            return None
        halvings = (default_crf(self.codec) - self._group_crf) / CRF_PER_HALVING[self.codec]
        ratio = delivered / (rung_kbps * 1000 * 2 ** halvings)
        return min(MAX_COST_RATIO, max(1 / MAX_COST_RATIO, ratio))

    def _group_bps(self, now: float) -> float:
        """The payload rate of the current group up to ``now`` had it sent every frame: frames skipped to keep
        to the budget hide what its crf costs. (Measured: at a crf that cost 45 kbps against a 30 kbps target,
        skipping held the rate on target, so the crf never rose, and a third of the frames went unsent for
        15 s.)"""
        assert self._group is not None
        sent, skipped = self._frames
        rate = (self.payload_bytes - self._group[1]) * 8 / max(now - self._group[0], 1e-9)
        return rate * (sent + skipped) / sent if sent else rate

    def skipped(self, now: float) -> None:
        """A frame was not sent because the stream was over its budget (`behind`); not while it pauses for a
        queue to drain (`drain`), which says nothing of the crf."""
        if now >= self._budget_at:
            self._frames[1] += 1

    def drain(self, seconds: float, now: float) -> None:
        """Send nothing for ``seconds`` from ``now`` while a queue on the path drains
        (`RateController.drain_until`): `behind` says so, the budget does not grow meanwhile, and any credit
        is forfeited (saved, it would go out as a burst into the queue just drained)."""
        self._budget_bits = min(self.budget_bits(now), (self.payload_bytes + self.other_bytes) * 8.0)
        self._budget_at = max(self._budget_at, now + max(0.0, seconds))

    def behind(self, now: float) -> bool:
        """Over budget by more than `SKIP_DEBT_S` of the target: the next frame should not be sent. Skipping a
        frame (the receiver interpolates across it) is the one lever that acts at once; the crf waits for the
        next keyframe."""
        return now < self._budget_at or self.debt_bits(now) > SKIP_DEBT_S * self.stream_bps

    def sent(self, payload_bytes: int, other_bytes: int = 0) -> None:
        """Bytes that went out: a frame's payload, and the headers or updates around it."""
        self.payload_bytes += payload_bytes
        self.other_bytes += other_bytes
        if payload_bytes:
            self._frames[0] += 1

    def next_crf(self, pts: int) -> int:
        """Before the keyframe at source frame ``pts``: the crf of the group that starts there."""
        now = pts / self.fps
        if self._group is None or now <= self._group[0] or self.group_due:
            # (A group started for a new target: its crf is already chosen, from the target's move.)
            self._group, self._frames = (now, self.payload_bytes, self.other_bytes), [0, 0]
            self.group_due, self._rate_scale, self._group_crf = False, 1.0, self.crf
            self._group_target = self._payload_bps
            return self.crf
        start, payload0, other0 = self._group
        span = now - start
        delivered = self._group_bps(now)
        other_bps = (self.other_bytes - other0) * 8 / span
        self.history.append((start, self.crf, delivered / 1000))
        debt = self.debt_bits(now)
        # Repaid over two groups: over one, each group's correction (decided a group late) overshot the other way.
        payback = max(PAYBACK_S, 2 * span)
        if self.frame_count > 0:
            payback = max(min(payback, self.spread_s - now), 1 / self.fps)
        want = max(self.stream_bps - other_bps - debt / payback, 0.05 * self.stream_bps)
        if delivered > 0:
            step = CRF_PER_HALVING[self.codec] * math.log2(delivered / want)
            step = max(-MAX_CRF_STEP, min(MAX_CRF_STEP, step))
            self.crf = self._in_range(self.crf + step)
        self._group, self._frames = (now, self.payload_bytes, self.other_bytes), [0, 0]
        self._rate_scale, self._group_crf, self._group_target = 1.0, self.crf, self._payload_bps
        return self.crf
