"""Training a video-specific autoencoder on the frames of one video.

Two objectives:

* ``reconstruct``: the paper's loss, ||x - g(f(x))||^2.
* ``restore``: the input is a degraded copy of x (downscaled by a random
  factor in [2, 16], with mild codec-like noise, then upsampled bicubically)
  and the target is the clean x. This trains exactly the projection the
  receiver applies to upsampled low-res frames.

The schedule is the paper's shape (Adam, batch 6, constant learning rate for
the first half, then linear decay to zero), scaled to the step budget. The
restore objective also scores the back-projected output (see
`vsa.receiver.reconstruct`), so the network learns the high frequencies that
complement the received low-res frame.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vsa.common.bundle import Bundle, from_model
from vsa.common.metrics import psnr_from_mse
from vsa.common.model import AEConfig, Autoencoder
from vsa.common.resample import consistent, to_tensor

OBJECTIVES = ("reconstruct", "restore")
# The paper's 2e-4 suits 200 epochs on a GPU; for budgets of minutes 2e-3 reached
# 3-4 dB higher PSNR in the same time on our clips (README, "Training").
LEARNING_RATE = 2e-3
BATCH_SIZE = 6
MIN_FACTOR, MAX_FACTOR = 2.0, 16.0
MAX_NOISE = 0.02
TIMING_STEPS = 10  # steps used to turn a time budget into a step count


def check_budget(steps: int | None, minutes: float | None) -> None:
    """A training budget is exactly one of a positive step count or a positive number of minutes."""
    if (steps is None) == (minutes is None):
        raise ValueError("give exactly one of a step budget or a time budget")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if minutes is not None and minutes <= 0:
        raise ValueError(f"minutes must be positive, got {minutes}")


@dataclass
class TrainOptions:
    steps: int | None = None
    minutes: float | None = None
    # Measured (README, "Results"): reconstruct beat restore on every seen-frame comparison.
    objective: str = "reconstruct"
    seed: int = 0
    batch_size: int = BATCH_SIZE
    lr: float = LEARNING_RATE
    checkpoint_seconds: float = 60.0
    consistency_weight: float = 1.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        check_budget(self.steps, self.minutes)


def degrade(clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Receiver-like inputs: random downscale, noise, 8-bit rounding, bicubic upscale.

    Returns the upsampled inputs and, per frame, the low-res frame they came from.
    """
    h, w = clean.shape[-2:]
    out = torch.empty_like(clean)
    lows = []
    for i in range(clean.shape[0]):
        u = torch.rand(2, generator=generator).tolist()
        # Log-uniform so that every octave of scale gets the same attention.
        factor = math.exp(math.log(MIN_FACTOR) + u[0] * (math.log(MAX_FACTOR) - math.log(MIN_FACTOR)))
        size = (max(1, round(h / factor)), max(1, round(w / factor)))
        low = F.interpolate(clean[i : i + 1], size=size, mode="bicubic", antialias=True, align_corners=False)
        noise = torch.randn(low.shape, generator=generator) * (u[1] * MAX_NOISE)
        low = (low + noise.to(low.device)).clamp(0, 1).mul(255).round().div(255)
        lows.append(low)
        out[i : i + 1] = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return out, lows


def learning_rate(step: int, total: int, base: float = LEARNING_RATE) -> float:
    """Constant for the first half of training, then linear decay to zero."""
    half = total / 2
    if step < half:
        return base
    return base * max(0.0, (total - step) / (total - half))


class Trainer:
    """Holds the model, optimizer and schedule; resumable from a bundle's train_state."""

    def __init__(
        self,
        frames: np.ndarray,
        config: AEConfig,
        options: TrainOptions,
        device: torch.device,
        meta: dict | None = None,
        resume: Bundle | None = None,
    ) -> None:
        if len(frames) == 0:
            raise ValueError("no frames to train on")
        self.frames = torch.from_numpy(frames)  # (N, H, W, 3) uint8, stays on the CPU
        self.options = options
        self.device = device
        self.meta = dict(meta or {})
        torch.manual_seed(options.seed)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.model = Autoencoder(config).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=options.lr)
        self.step = 0
        self.total_steps = options.steps or 0
        self.elapsed = 0.0
        self.loss_ema: float | None = None
        if resume is not None:
            self._restore(resume)

    def _restore(self, bundle: Bundle) -> None:
        state = bundle.train_state
        if not state:
            raise ValueError("that model has no training state to resume from (it was saved without one)")
        if bundle.config != self.model.config:
            raise ValueError(f"cannot resume a {bundle.config} model as {self.model.config}")
        self.model.load_state_dict(bundle.state_dict)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["rng"])
        self.step = int(state["step"])
        self.total_steps = int(state["total_steps"])
        self.elapsed = float(state["elapsed"])
        self.loss_ema = state.get("loss_ema")

    def bundle(self, with_state: bool = True) -> Bundle:
        meta = dict(self.meta, steps=self.step, seconds=round(self.elapsed, 1), objective=self.options.objective)
        if self.loss_ema is not None:
            meta["train_psnr"] = round(psnr_from_mse(self.loss_ema), 3)
        bundle = from_model(self.model, meta)
        if with_state:
            bundle.train_state = {
                "optimizer": self.optimizer.state_dict(),
                "rng": self.generator.get_state(),
                "step": self.step,
                "total_steps": self.total_steps,
                "elapsed": self.elapsed,
                "loss_ema": self.loss_ema,
            }
        return bundle

    def train_step(self) -> float:
        idx = torch.randint(len(self.frames), (self.options.batch_size,), generator=self.generator)
        clean = to_tensor(self.frames[idx])
        lows = None
        if self.options.objective == "restore":
            inputs, lows = degrade(clean, self.generator)
        else:
            inputs = clean
        clean, inputs = clean.to(self.device), inputs.to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.total_steps, self.options.lr)
        self.model.train()
        output = self.model(inputs)
        mse = F.mse_loss(output, clean)
        loss = mse
        if lows is not None and self.options.consistency_weight > 0:
            fused = torch.cat([consistent(output[i : i + 1], low.to(self.device)) for i, low in enumerate(lows)])
            loss = loss + self.options.consistency_weight * F.mse_loss(fused, clean)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        # The progress bar and bundle report PSNR of the network's own output,
        # so track that MSE rather than the summed loss.
        value = float(mse.detach())
        self.loss_ema = value if self.loss_ema is None else 0.95 * self.loss_ema + 0.05 * value
        return float(loss.detach())

    def run(self, on_checkpoint: Callable[[Bundle], None] | None = None) -> Bundle:
        """Train to the budget; call ``on_checkpoint`` every checkpoint_seconds and at the end."""
        opts = self.options
        deadline = None
        if opts.minutes is not None:
            budget = opts.minutes * 60.0
            deadline = time.monotonic() + max(0.0, budget - self.elapsed)
            if not self.total_steps:
                self.total_steps = 10**9  # replaced once the first steps are timed
        bar = None
        if opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps if opts.steps else None, initial=self.step, unit="step",
                       desc="training", dynamic_ncols=True, mininterval=1.0)
        last_save = time.monotonic()
        started = time.monotonic() - self.elapsed
        run_start, run_start_step = time.monotonic(), self.step
        while self.step < self.total_steps:
            now = time.monotonic()
            if deadline is not None:
                if now >= deadline:
                    break
                done = self.step - run_start_step
                if done >= TIMING_STEPS and done % TIMING_STEPS == 0:
                    # Re-estimate the step count that fits the time left, so the
                    # learning-rate decay ends when the time budget does.
                    per_step = (now - run_start) / done
                    self.total_steps = max(self.step + 1, self.step + int((deadline - now) / per_step))
                    if bar is not None:
                        bar.total = self.total_steps
            self.train_step()
            self.elapsed = time.monotonic() - started
            if bar is not None:
                bar.update(1)
                # refresh=False: let mininterval pace redraws, or a log file gets a line per step.
                bar.set_postfix(loss=f"{self.loss_ema:.5f}", psnr=f"{psnr_from_mse(self.loss_ema):.2f}dB", refresh=False)
            if on_checkpoint is not None and time.monotonic() - last_save >= opts.checkpoint_seconds:
                on_checkpoint(self.bundle())
                last_save = time.monotonic()
        if bar is not None:
            bar.close()
        # A time budget that ran out early still ends with the decayed learning rate's model;
        # record the step count actually reached so a resume does not run on.
        self.total_steps = min(self.total_steps, self.step) if deadline is not None else self.total_steps
        final = self.bundle()
        if on_checkpoint is not None:
            on_checkpoint(final)
        return final
