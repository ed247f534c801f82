"""Online adaptation: the sender keeps fine-tuning the receiver's model on what it just sent.

A sender holds what no receiver has: the full-size frames it captured. SRVC
(ICCV'21) and LiveNAS (SIGCOMM'20) turn that into quality by training the
receiver's network on recent frames and streaming small weight updates.
`OnlineAdapter` does that for any frames architecture:

* It keeps a bounded buffer of recent *sent* frames (causal; every
  ``sample``-th one, for a longer memory), each paired with the low-res
  frame the receiver decoded from the payload, so it trains on exactly what
  the receiver will see.
* Every ``every`` seconds of the stream (and soon after a scene cut) it
  chooses the weights that matter most now (`choose`: as many as the byte
  budget allows) and takes ``steps`` Adam steps on crops of the buffer's
  older frames, moving only those.
* It drafts the update (`vsa.common.update`) that brings the receiver's
  weights to its own, within what the rate share allows so far, and
  measures it on the newest frames, which it never trained on.
* It sends it only when it earns its bits: its gain must beat what the same
  bits would buy spent on the payload (`payload_gain`), by a margin for how
  far such held-out gains have missed what drafts then did on the frames
  that came after them (`margin`).

Its own float weights keep training between updates; what an update leaves
out (entries that moved less, or further than a step count can say) is sent
later. The weights the receiver holds are tracked exactly (`current`), so
every update is made against them and its result digest is the receiver's.

File mode calls it inline (`StreamEncoder(synchronous=True)`); a live sender
runs it in a process of its own (`vsa.sender.adapt_process`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from vsa.common import registry
from vsa.common.bundle import Bundle
from vsa.common.examples import Examples
from vsa.common.framecodec import model_crf
from vsa.common.metrics import mean_psnr, psnr
from vsa.common.resample import to_tensor, upscale
from vsa.common.update import UpdateGrid, make_update, state_digest

from .adapt_options import AdaptSettings

log = logging.getLogger("vsa.adapt")

HOLDOUT = 4
"""The newest 1/HOLDOUT of the buffer is never trained on: updates are judged on it."""
CUT_DIFFERENCE = 0.06
"""Mean absolute difference (in [0, 1]) between two sent low-res frames above which a scene cut is declared.
Measured on the office session at scale 4: its nine cuts 0.084 to 0.138, every other pair of frames at most
0.03 (median 0.005)."""
DB_PER_DOUBLING = 2.0
"""What doubling the payload's rate buys, in dB (README, "Online adaptation"): measured with the base at scale 4
between crf 32 and 24, 1.7 to 2.4 dB on the talking head and the office session; less at higher rates."""
HORIZON = 10.0
"""Seconds an update's gain is counted over when it is weighed against the payload: the weights stay, so the gain
lasts as long as the scene does (SRVC retrains every 5-10 s). A stream of known length counts only what is left
of it: an update two seconds from the end buys two seconds."""
NOISE_PRIOR_DB = 0.1
"""How far a held-out gain is assumed to miss what the update then does, until the adapter has measured it
(`OnlineAdapter.margin`). On the office session, adapting a model already fine-tuned on its first half, 108
drafted updates measured a held-out gain of +0.003 dB on average with a spread of 0.126 dB: noise around
nothing, which passed the gate 6 times."""
MIN_MARGIN_DB = 0.02
"""The least margin, however well held-out gains have predicted so far."""
NOISE_ROUNDS = 8
"""Recent misses the margin is computed from (the content, and with it the noise, changes)."""
MIN_TRAIN_FRAMES = 4
GRADIENT_BATCHES = 8
"""Batches whose gradients choose the weights an update trains (`OnlineAdapter.choose`)."""
BYTES_PER_ENTRY = 2.0
"""Measured cost of one changed weight in an update (1.3 to 2.3 bytes): turns the byte budget into a count."""
MIN_FRACTION, MAX_FRACTION = 0.005, 0.25
"""Share of the stream's weights one update may train; the byte budget decides within it (SRVC trains 1%)."""


class Stopped(Exception):
    """The adapter was told to stop mid-round."""


@dataclass(frozen=True)
class Update:
    """One update the adapter decided to send."""

    delta: bytes
    base_sha256: bytes
    result_sha256: bytes
    changed: int
    """Entries it changes."""
    gain_db: float
    """Measured on the held-out frames: the receiver's PSNR after it, minus before."""


def payload_gain(update_bytes: int, payload_bps: float, seconds: float = HORIZON) -> float:
    """dB the payload would gain from ``update_bytes`` more bits spread over ``seconds``."""
    if payload_bps <= 0:
        return 0.0
    return DB_PER_DOUBLING * math.log2(1.0 + update_bytes * 8 / (max(seconds, 1e-3) * payload_bps))


class OnlineAdapter:
    """Fine-tunes ``bundle`` (the model the receiver holds, as it decoded it) on the frames of one stream."""

    def __init__(self, bundle: Bundle, scale: int, codec: str, crf: int, fps: float,
                 settings: AdaptSettings, frame_count: int = 0) -> None:
        """``frame_count``: the stream's length when it is known (a file), 0 for a camera or a loop."""
        self.settings = settings
        self.frame_count = frame_count
        self.arch = registry.of_config(bundle.config)
        if not self.arch.adapts:
            raise ValueError(f"{bundle.kind} models cannot adapt online (only architectures that say they can, "
                             f"such as sr)")
        self.scale, self.codec, self.crf, self.fps = scale, codec, crf, fps
        self.objective = self.arch.check_objective(None)
        torch.manual_seed(settings.seed)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.model = bundle.build()
        self.current = {k: v.clone() for k, v in bundle.network_state().items()}
        """The weights the receiver holds now."""
        self.grid = UpdateGrid.for_model(bundle, scale)
        trainable = set(self.grid.steps)
        for name, p in self.model.named_parameters():
            p.requires_grad_(name in trainable)
        self.digest = state_digest(self.current)
        self.version = 0
        self._frames: deque[tuple[int, np.ndarray, np.ndarray]] = deque(maxlen=settings.buffer)
        self._lock = threading.Lock()  # live: a reader thread observes while the training thread reads
        self._last_low: torch.Tensor | None = None
        self._seen = 0
        self.next_at = settings.every * fps
        """The pts from which the next update is considered."""
        self.payload_bytes = 0
        self.update_bytes = 0
        self.last_pts = -1
        """The newest frame observed (a live trainer asks `due(last_pts)`)."""
        self.steps_taken = 0
        self.considered = 0
        self.cuts = 0
        self.history: list[dict] = []
        """One entry per considered update: pts, steps, bytes, gain, whether it was sent."""
        self._draft: tuple[int, dict[str, torch.Tensor], dict[str, torch.Tensor], float, dict] | None = None
        """The last round's (pts, weights before, drafted weights, held-out gain, history entry), sent or not:
        what it then does on the frames that came after it is how far held-out gains miss."""
        self.misses: deque[float] = deque(maxlen=NOISE_ROUNDS)
        """Held-out gain minus the gain measured afterwards on newer frames, for recent drafts."""
        self.stop = threading.Event()
        """Set by a live sender that is closing: the round in progress ends at its next step, sending nothing."""

    # -- frames ----------------------------------------------------------------------------

    def observe(self, pts: int, source: np.ndarray, low: np.ndarray, payload_bytes: int) -> None:
        """A frame was sent: its full-size ``source`` (h, w, 3 uint8) and the low-res frame the receiver decodes."""
        self.payload_bytes += payload_bytes
        self.last_pts = pts
        low_t = to_tensor(low)[0]
        if self._last_low is not None and float((low_t - self._last_low).abs().mean()) > CUT_DIFFERENCE:
            # A new scene: consider an update soon. The buffer keeps the old scene's frames too: clearing it
            # measured no better on the office session, whose scenes share a room.
            self.cuts += 1
            self.next_at = min(self.next_at, pts + max(2 * HOLDOUT, round(0.5 * self.fps)))
        self._last_low = low_t
        self._seen += 1
        if self._seen % self.settings.sample == 0 or len(self._frames) < MIN_TRAIN_FRAMES:
            with self._lock:
                self._frames.append((pts, source, low))

    def due(self, pts: int) -> bool:
        """Whether an update should be considered before frame ``pts`` is sent."""
        return pts >= self.next_at and len(self._frames) >= MIN_TRAIN_FRAMES

    # -- training and updates -----------------------------------------------------------------

    def _split(self) -> tuple[list[tuple[int, np.ndarray, np.ndarray]], list[tuple[int, np.ndarray, np.ndarray]]]:
        """(frames to train on, frames to judge updates on): the newest 1/HOLDOUT are held out.

        Judged on frames interleaved with the training ones, updates measured
        +0.1 dB each and cost 0.06 dB on the frames that followed: next to a
        training frame, a held-out one only tests memory. The newest frames
        test what an update is for, the frames to come.
        """
        with self._lock:
            frames = list(self._frames)
        cut = len(frames) - max(1, len(frames) // HOLDOUT)
        return frames[:cut], frames[cut:]

    def _examples(self) -> Examples:
        train, _ = self._split()
        return Examples([np.stack([s for _, s, _ in train])], [self.fps], scales=(self.scale,), crfs=(self.crf,),
                        codec=self.codec, _coded={(0, self.scale, self.crf): np.stack([lo for _, _, lo in train])})

    def _loss(self, examples: Examples) -> torch.Tensor:
        batch = self.arch.training_batch(examples, self.objective, self.settings.batch, self.generator,
                                         self.steps_taken)
        return self.arch.training_loss(self.model, batch, self.objective)[0]

    def choose(self, examples: Examples, entries: int) -> dict[str, torch.Tensor]:
        """Masks of the ``entries`` weights that matter most now: largest gradient per grid step (SRVC's choice).

        Training only those (rather than all, then sending the largest moves)
        measured 2-3x the gain per byte: a truncated dense update leaves out
        the moves that the kept ones were trained to work with.
        """
        params = dict(self.model.named_parameters())
        score = {name: torch.zeros_like(params[name]) for name in self.grid.steps}
        self.model.train()
        for _ in range(GRADIENT_BATCHES):
            started = time.perf_counter()
            self.model.zero_grad(set_to_none=True)
            self._loss(examples).backward()
            self._rest(started)
            for name in score:
                if params[name].grad is not None:
                    score[name] += params[name].grad.abs()
        self.model.zero_grad(set_to_none=True)
        weighted = {name: s * self.grid.steps[name] for name, s in score.items()}
        flat = torch.cat([w.reshape(-1) for w in weighted.values()])
        entries = max(1, min(entries, flat.numel()))
        threshold = flat.kthvalue(flat.numel() - entries + 1).values
        return {name: (w >= threshold) & (w > 0) for name, w in weighted.items()}

    def train(self, steps: int, masks: dict[str, torch.Tensor] | None = None) -> None:
        """``steps`` Adam steps on the buffer's training frames, moving only the entries ``masks`` select.

        A fresh optimiser each time: Adam's momentum from an earlier round
        would keep moving weights this round's masks leave out.
        """
        examples = self._examples()
        params = dict(self.model.named_parameters())
        optimizer = torch.optim.Adam([p for p in params.values() if p.requires_grad], lr=self.settings.lr)
        self.model.train()
        for _ in range(steps):
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            self._loss(examples).backward()
            if masks is not None:
                for name, mask in masks.items():
                    if params[name].grad is not None:
                        params[name].grad.mul_(mask)
            optimizer.step()
            self.steps_taken += 1
            self._rest(started)
        self.model.eval()

    def _rest(self, started: float) -> None:
        """Keep to the duty cycle (`AdaptSettings.duty`); raise `Stopped` once the sender is closing."""
        if self.stop.is_set():
            raise Stopped
        if self.settings.duty < 1:
            self.stop.wait((time.perf_counter() - started) * (1 / self.settings.duty - 1))

    def _score(self, state: dict[str, torch.Tensor], held: list[tuple[int, np.ndarray, np.ndarray]]) -> float:
        """Mean PSNR the receiver gets on ``held`` with weights ``state`` (one reprojection pass, as it runs)."""
        model = self.arch.for_inference(Bundle(self.model.config, state).build(), scale=self.scale,
                                        crf=model_crf(self.codec, self.crf))
        source = to_tensor(np.stack([s for _, s, _ in held]))
        low = to_tensor(np.stack([lo for _, _, lo in held]))
        with torch.inference_mode():
            z = model.encode_lowres(low, tuple(source.shape[-2:]))
            if z is None:
                z = model.encode(upscale(low, tuple(source.shape[-2:])))
            out = model.decode(z).clamp(0, 1)
        return mean_psnr(psnr(out.mul(255).round().div(255), source))

    def allowance(self) -> int:
        """Update bytes the rate share allows now: share of everything sent so far, less what updates took."""
        share = self.settings.share
        return int(share / (1 - share) * self.payload_bytes) - self.update_bytes

    def margin(self) -> float:
        """dB a held-out gain must clear beyond the payload's worth: how far such gains have missed.

        The root mean square of recent misses (`NOISE_PRIOR_DB` before the
        first is measured, so the first draft of a stream is judged
        cautiously). A model that has little left to learn drafts updates
        whose held-out gains scatter around zero; without a margin the lucky
        ones are sent and cost bits for nothing (the office session, adapting
        its fine-tuned model: +17% BD-rate against frozen). A model that is
        learning drafts gains that hold, and its margin falls to `MIN_MARGIN_DB`.
        """
        if not self.misses:
            return NOISE_PRIOR_DB
        return max(MIN_MARGIN_DB, math.sqrt(sum(m * m for m in self.misses) / len(self.misses)))

    def _hindsight(self) -> None:
        """Score the last draft on the frames that arrived after it was made, and record how far it missed."""
        if self._draft is None:
            return
        pts, before, drafted, predicted, entry = self._draft
        with self._lock:
            newer = [f for f in self._frames if f[0] > pts]
        if len(newer) < MIN_TRAIN_FRAMES:
            return  # too few to say; the draft waits for the next round
        self._draft = None
        realised = self._score(drafted, newer) - self._score(before, newer)
        entry["realised_db"] = round(realised, 3)
        self.misses.append(predicted - realised)

    def horizon(self, pts: int) -> float:
        """Seconds an update sent before frame ``pts`` is counted to serve (`HORIZON`, or what is left)."""
        if self.frame_count <= 0:
            return HORIZON
        return min(HORIZON, max(0, self.frame_count - pts) / self.fps)

    def consider(self, pts: int) -> Update | None:
        """Train, then send an update if one earns its bits (None: nothing worth sending yet, or stopped)."""
        try:
            return self._consider(pts)
        except Stopped:
            return None

    def _consider(self, pts: int) -> Update | None:
        self.next_at = pts + self.settings.every * self.fps
        self.considered += 1
        budget = self.allowance()
        total = sum(int(self.current[name].numel()) for name in self.grid.steps)
        entries = int(min(MAX_FRACTION * total, max(MIN_FRACTION * total, budget / BYTES_PER_ENTRY)))
        self._hindsight()
        self.train(self.settings.steps, self.choose(self._examples(), entries))
        _, held = self._split()
        target = {k: v.detach() for k, v in self.model.state_dict().items()}
        before = self._score(self.current, held)
        payload_bps = self.payload_bytes * 8 / max(pts / self.fps, 1e-3)
        entry = {"pts": pts, "steps": self.steps_taken, "entries": entries, "before_db": round(before, 3),
                 "budget": budget, "sent": False}
        # Everything the trainer moved; if that is over the budget, the largest moves that fit.
        keep, draft = total, None
        while keep >= 1 and budget > 0:
            draft = make_update(target, self.current, self.grid, keep)
            if len(draft[0]) <= budget:
                break
            keep, draft = keep // 2, None
        if draft is None or not draft[0]:
            self.history.append(entry)
            return None
        delta, state, changed = draft
        gain = self._score(state, held) - before
        horizon = self.horizon(pts)
        worth = payload_gain(len(delta), payload_bps, horizon)
        margin = self.margin()
        entry.update(gain_db=round(gain, 3), payload_db=round(worth, 3), margin_db=round(margin, 3),
                     bytes=len(delta), changed=changed, horizon_s=round(horizon, 2))
        self._draft = (pts, self.current, state, gain, entry)
        if gain <= worth + margin:
            self.history.append(entry)
            return None
        update = Update(delta, self.digest, state_digest(state), changed, gain)
        self.current, self.digest = state, update.result_sha256
        self.version += 1
        self.update_bytes += len(delta)
        entry.update(sent=True, version=self.version)
        self.history.append(entry)
        log.info("model update %d at pts %d: %d entries, %d bytes, %+.2f dB on held-out frames",
                 self.version, pts, changed, len(delta), gain)
        return update

