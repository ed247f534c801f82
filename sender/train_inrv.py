"""Training INR-V on one video, and inverting new clips into codes.

The video is cut into clips of T frames; each clip gets an instance code,
learned jointly with the hypernetwork by auto-decoding (the codes are
parameters, there is no encoder). Codes are regularised towards a standard
Gaussian, the thesis's Gaussian option (section 3.5.1): each clip has a mean
and a log-variance, training samples the code by reparameterisation and adds
a small KL term, and the mean is what gets sent. (The thesis's CLIP
regulariser needs CLIP's weights, which we cannot download here.)

Training is progressive (section 3.2.3): stage i fits the first
min(growth^i, N) clips, reusing the codes and weights of the stage before and
drawing the new clips' codes from a Gaussian. The thesis grows by powers of
ten over tens of thousands of videos; one video has tens of clips, so we
grow by powers of two. Each stage gets a share of the budget proportional to
its clip count.

Each step renders a random subset of pixels of a batch of clips, not whole
clips: the error is the same in expectation and a step costs a fraction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from vsa.common.inrv import INRV, INRVConfig, clip_spans, grid
from vsa.common.metrics import mean_psnr, psnr, psnr_from_mse

from .train import check_budget

LEARNING_RATE = 1e-3
CODE_LEARNING_RATE = 1e-2
INVERSION_LR = 1e-2
KL_WEIGHT = 1e-4
POINTS_PER_CLIP = 4096
CLIPS_PER_STEP = 8
GROWTH = 2


@dataclass
class INRVTrainOptions:
    minutes: float | None = None
    steps: int | None = None
    seed: int = 0
    lr: float = LEARNING_RATE
    points: int = POINTS_PER_CLIP
    kl_weight: float = KL_WEIGHT
    growth: int = GROWTH
    progress: bool = True

    def __post_init__(self) -> None:
        check_budget(self.steps, self.minutes)
        if self.growth < 2:
            raise ValueError(f"growth must be at least 2, got {self.growth}")


def split_clips(frames: np.ndarray, clip_frames: int) -> list[torch.Tensor]:
    """(N, H, W, 3) uint8 frames -> clips as (n, H, W, 3) float tensors in [0, 1], n <= clip_frames."""
    video = torch.from_numpy(frames).float().div_(255)
    return [video[s:e] for s, e in clip_spans(len(frames), clip_frames)]


def stage_sizes(clips: int, growth: int) -> list[int]:
    """Clip counts of the progressive stages: 1, growth, growth^2, ... up to all of them."""
    sizes, n = [], 1
    while n < clips:
        sizes.append(n)
        n *= growth
    return sizes + [clips]


class _Sampler:
    """Random pixels of clips, with their coordinates on the clip's full T-frame box."""

    def __init__(self, clips: list[torch.Tensor], clip_frames: int, generator: torch.Generator) -> None:
        self.clips = clips
        self.generator = generator
        h, w = clips[0].shape[1:3]
        self.coords = grid(h, w, clip_frames).reshape(-1, 3)
        self.pixels = [c.reshape(-1, 3) for c in clips]  # a short last clip uses the first n frame slots

    def batch(self, indices: list[int], points: int) -> tuple[torch.Tensor, torch.Tensor]:
        coords, targets = [], []
        for i in indices:
            pick = torch.randint(0, len(self.pixels[i]), (points,), generator=self.generator)
            coords.append(self.coords[pick])
            targets.append(self.pixels[i][pick])
        return torch.stack(coords), torch.stack(targets)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over codes of KL(N(mu, sigma^2) || N(0, 1)), summed over dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()


class INRVTrainer:
    """Fits the hypernetwork and one code per clip; ``run`` returns (model, code means)."""

    def __init__(self, frames: np.ndarray, config: INRVConfig, options: INRVTrainOptions,
                 device: torch.device | str = "cpu") -> None:
        if len(frames) == 0:
            raise ValueError("no frames to train on")
        torch.manual_seed(options.seed)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.config, self.options, self.device = config, options, torch.device(device)
        self.clips = split_clips(frames, config.clip_frames)
        self.sampler = _Sampler(self.clips, config.clip_frames, self.generator)
        self.model = INRV(config).to(self.device)
        n = len(self.clips)
        # New codes are drawn from a Gaussian (section 3.2.3); small, so every clip starts near the base INR.
        self.mu = torch.nn.Parameter(0.01 * torch.randn(n, config.code_dim, generator=self.generator).to(self.device))
        self.logvar = torch.nn.Parameter(torch.full((n, config.code_dim), -6.0, device=self.device))
        self.optimizer = torch.optim.Adam([
            {"params": self.model.parameters(), "lr": options.lr},
            {"params": [self.mu, self.logvar], "lr": CODE_LEARNING_RATE},
        ])
        self.step = 0
        self.history: list[float] = []

    def _step(self, active: int, lr_scale: float) -> float:
        for group, base in zip(self.optimizer.param_groups, (self.options.lr, CODE_LEARNING_RATE)):
            group["lr"] = base * lr_scale
        count = min(CLIPS_PER_STEP, active)
        indices = torch.randperm(active, generator=self.generator)[:count].tolist()
        coords, targets = self.sampler.batch(indices, self.options.points)
        coords, targets = coords.to(self.device), targets.to(self.device)
        mu, logvar = self.mu[indices], self.logvar[indices]
        noise = torch.randn(mu.shape, generator=self.generator).to(self.device)
        codes = mu + noise * (0.5 * logvar).exp()
        mse = torch.nn.functional.mse_loss(self.model.render_points(codes, coords), targets)
        loss = mse + self.options.kl_weight * kl_standard_normal(mu, logvar)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return float(mse.detach())

    def run(self, on_progress: Callable[[int, float], None] | None = None) -> tuple[INRV, torch.Tensor]:
        opts = self.options
        stages = stage_sizes(len(self.clips), opts.growth)
        shares = [n / sum(stages) for n in stages]
        bar = None
        if opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=opts.steps, unit="step", desc="training INR-V", mininterval=1.0, dynamic_ncols=True)
        start = time.monotonic()
        ema = None
        total_steps = opts.steps
        per_step = None
        try:
            done_share = 0.0
            for active, share in zip(stages, shares):
                stage_start = self.step
                while True:
                    if opts.steps is not None:
                        budget = int(round(opts.steps * (done_share + share)))
                        if self.step >= budget:
                            break
                        progress = self.step / opts.steps
                    else:
                        elapsed = time.monotonic() - start
                        if elapsed >= opts.minutes * 60 * (done_share + share):
                            break
                        progress = elapsed / (opts.minutes * 60)
                    # Constant, then linear decay over the last 30% of the budget, to no less than 5% of the rate.
                    lr_scale = 1.0 if progress < 0.7 else max(0.05, (1 - progress) / 0.3)
                    mse = self._step(active, lr_scale)
                    ema = mse if ema is None else 0.98 * ema + 0.02 * mse
                    self.history.append(mse)
                    if bar is not None:
                        if opts.steps is None and self.step % 20 == 0:
                            per_step = (time.monotonic() - start) / self.step
                            total_steps = self.step + int((opts.minutes * 60 - (time.monotonic() - start)) / per_step)
                            bar.total = total_steps
                        bar.update(1)
                        bar.set_postfix(clips=f"{active}/{len(self.clips)}", psnr=f"{psnr_from_mse(ema):.2f}dB",
                                        refresh=False)
                    if on_progress is not None:
                        on_progress(self.step, mse)
                done_share += share
                if self.step == stage_start and active == stages[-1]:
                    self._step(active, 1.0)  # a budget too small for the last stage still trains once on every clip
        finally:
            if bar is not None:
                bar.close()
        self.model.eval()
        return self.model, self.mu.detach().clone()

    @torch.no_grad()
    def clip_psnr(self, codes: torch.Tensor | None = None) -> list[float]:
        """Mean PSNR of each training clip rendered whole from its code (the code means by default)."""
        codes = self.mu.detach() if codes is None else codes
        return [clip_psnr(self.model, codes[i], clip) for i, clip in enumerate(self.clips)]


@torch.no_grad()
def clip_psnr(model: INRV, code: torch.Tensor, clip: torch.Tensor) -> float:
    """Mean per-frame PSNR of ``clip`` ((n, H, W, 3) in [0, 1]) rendered from ``code`` at its own size."""
    n, h, w, _ = clip.shape
    rendered = model.render(code[None].to(next(model.parameters()).device), h, w, model.config.clip_frames)[0, :n]
    return mean_psnr(psnr(rendered.cpu(), clip.permute(0, 3, 1, 2)))


def invert(model: INRV, clip: torch.Tensor, steps: int, init: torch.Tensor | None = None,
           lr: float = INVERSION_LR, points: int = POINTS_PER_CLIP, seed: int = 0,
           seconds: float | None = None) -> tuple[torch.Tensor, list[float]]:
    """Find a code for a clip the model never saw: Adam on the code alone, the hypernetwork frozen.

    ``init`` warm-starts from another code (the previous clip's, live). With
    ``seconds``, it stops early when that much time is spent (at least one
    step runs): a live sender must finish a clip before the next one is
    captured. Returns the code and the per-step mean squared error.
    """
    deadline = None if seconds is None else time.perf_counter() + seconds
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    sampler = _Sampler([clip], model.config.clip_frames, generator)
    start = init.detach().clone() if init is not None else torch.zeros(model.config.code_dim)
    code = torch.nn.Parameter(start.to(device)[None])
    optimizer = torch.optim.Adam([code], lr=lr)
    for p in model.parameters():
        p.requires_grad_(False)
    losses = []
    try:
        for _ in range(steps):
            coords, targets = sampler.batch([0], points)
            mse = torch.nn.functional.mse_loss(model.render_points(code, coords.to(device)), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            mse.backward()
            optimizer.step()
            losses.append(float(mse.detach()))
            if deadline is not None and time.perf_counter() >= deadline:
                break
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return code.detach()[0].cpu(), losses
