"""Spatial and temporal super-resolution with any frames architecture (`vsa.common.registry`).

Spatial: *reprojection* (the paper's eq. 5-6). The low-res frame is
upsampled bicubically and pushed through decoder(encoder(.)) ``iterations``
times: for the paper's autoencoder that pulls it onto the manifold of frames
it learned; for the super-resolution network it adds the detail it learned.

After the last pass the output may be back-projected onto the received
frame (`vsa.common.resample.back_projection`): it keeps the autoencoder's
high frequencies but takes its low frequencies from what was sent. That
rescues frames the model never saw (12 dB on the talking head's held-out
tail) but costs 0.25-3 dB on frames it was trained on, because it also
copies in the payload's coding noise. ``back_project="auto"`` (the default)
decides per frame: a frame whose reprojection already agrees with the
received one (low-res PSNR of AUTO_TRUST_DB or more) is left alone, one
that disagrees (AUTO_FIX_DB or less) is fully back-projected, with a linear
blend between. Seen frames measured 34.5 dB or more, unseen ones about 20.
Below AUTO_FIX_DB the model cannot explain the frame, so the detail it adds
is likely misplaced (it recalls the nearest frame it saw): ``auto`` then
also scales that detail down, towards AUTO_MIN_DETAIL of it at AUTO_DAMP_DB,
which leaves plain bicubic upscaling plus a little of the model's detail.
On the talking head's held-out tail a quarter of the detail scored best
(+0.9 dB over full back-projection, +0.1 dB over bicubic, without payload
coding); seen frames of every clip measured agree at 32 dB or more and are
untouched.

Temporal: frames that were not sent are decoded from linearly interpolated
latent codes (eq. 8) of their two sent neighbours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from vsa.common import registry
from vsa.common.registry import MAX_ITERATIONS, FrameModel
from vsa.common.resample import back_projection, upscale

BACK_PROJECT_MODES = ("auto", "always", "never")
AUTO_TRUST_DB = 34.0
AUTO_FIX_DB = 30.0
AUTO_DAMP_DB = 20.0
AUTO_MIN_DETAIL = 0.25


def auto_weight(agreement_db: torch.Tensor) -> torch.Tensor:
    """How much of the back-projection to apply, per frame, from its low-res agreement in dB."""
    return ((AUTO_TRUST_DB - agreement_db) / (AUTO_TRUST_DB - AUTO_FIX_DB)).clamp(0.0, 1.0)


def auto_detail(agreement_db: torch.Tensor) -> torch.Tensor:
    """How much of the model's detail (what it adds to bicubic upscaling) to keep, per frame."""
    t = ((agreement_db - AUTO_DAMP_DB) / (AUTO_FIX_DB - AUTO_DAMP_DB)).clamp(0.0, 1.0)
    return AUTO_MIN_DETAIL + (1.0 - AUTO_MIN_DETAIL) * t


INTERPOLATION_BATCH = 8
"""Frames decoded at once when interpolating (bounds the activations a long gap needs)."""


@dataclass
class Projection:
    lowres: torch.Tensor  # (N, 3, h, w) on the device
    latents: torch.Tensor  # (N, ...): codes of the last pass
    iterations: int
    seconds: float  # spent on the passes so far, for `Reconstructor.pass_seconds`


@dataclass
class Reprojected:
    frames: torch.Tensor  # (N, 3, H, W) in [0, 1]
    latents: torch.Tensor  # (N, ...): codes of the last pass, for interpolation


class Reconstructor:
    """Batched reprojection and latent interpolation on one device."""

    def __init__(
        self,
        model: FrameModel,
        size: tuple[int, int],
        device: torch.device | str = "cpu",
        iterations: int | None = None,
        back_project: str | None = None,
        scale: int = 4,
        crf: int = 0,
    ) -> None:
        """``scale`` and ``crf`` describe the stream (some architectures have a network per scale and quality)."""
        arch = registry.of_model(model)
        if arch.payload != "frames":
            raise ValueError(f"a {arch.name} model renders codes; it does not reconstruct frames")
        iterations = arch.default_iterations if iterations is None else iterations
        back_project = back_project or arch.default_back_project
        if not 1 <= iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be 1 to {MAX_ITERATIONS}, got {iterations}")
        if back_project not in BACK_PROJECT_MODES:
            raise ValueError(f"back_project must be one of {', '.join(BACK_PROJECT_MODES)}, got {back_project!r}")
        self.device = torch.device(device)
        self.size = size
        self.iterations = iterations
        self.back_project = back_project
        self.memory_format = arch.memory_format
        self.model = arch.for_inference(model, scale=scale, crf=crf).to(self.device)
        self.pass_seconds = 0.0
        """Wall time of one reprojection pass in the last call, per frame: what one more pass would cost."""

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        # Images stay NCHW: resampling is 2x slower in channels_last on CPU.
        return x.to(self.device, non_blocking=True).contiguous()

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z).contiguous()

    @torch.inference_mode()
    def project(self, lowres: torch.Tensor, iterations: int | None = None) -> Projection:
        """The codes of reprojection's last pass, for (N, 3, h, w) low-res frames in [0, 1].

        This is all latent interpolation needs: a live receiver decodes the
        frames between two sent ones from these before it finishes the sent
        frame with `render`, which saves interpolated frames a decode and a
        back-projection of latency.
        """
        n = self.iterations if iterations is None else iterations
        if n < 1:
            raise ValueError(f"iterations must be at least 1, got {n}")
        low = self._prepare(lowres)
        start = time.perf_counter()
        z = self.model.encode_lowres(low, self.size)
        if z is None:
            z = self._encode(upscale(low, self.size))
        for _ in range(n - 1):
            z = self.model.recode(z)
        return Projection(low, z, n, self._synchronized(start))

    @torch.inference_mode()
    def render(self, projection: Projection) -> Reprojected:
        """Finish `project`: decode its codes and back-project onto the received frames."""
        low = projection.lowres
        start = time.perf_counter()
        x = self._decode(projection.latents).clamp_(0.0, 1.0)
        seconds = projection.seconds + self._synchronized(start)
        self.pass_seconds = seconds / (projection.iterations * len(low))
        if self.back_project != "never":
            correction, agreement = back_projection(x, low)
            if self.back_project == "auto":
                correction = correction * auto_weight(agreement).view(-1, 1, 1, 1)
            x = (x + correction).clamp_(0.0, 1.0)
            if self.back_project == "auto" and bool((agreement < AUTO_FIX_DB).any()):
                # Fully back-projected here, x is bicubic plus the model's detail: keep only part of it.
                # (A blend of two images in [0, 1] needs no clamp.)
                bicubic = upscale(low, self.size)
                x = bicubic + auto_detail(agreement).view(-1, 1, 1, 1) * (x - bicubic)
        return Reprojected(x, projection.latents)

    def reproject(self, lowres: torch.Tensor, iterations: int | None = None) -> Reprojected:
        """Reconstruct full-size frames from (N, 3, h, w) low-res frames in [0, 1]."""
        return self.render(self.project(lowres, iterations))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x.contiguous(memory_format=self.memory_format))

    def _synchronized(self, start: float) -> float:
        """Seconds since ``start``, once the device is done: CUDA kernels run asynchronously."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def warm_up(self, lowres_size: tuple[int, int]) -> None:
        """Run every kernel once on a blank frame, so the first real frame is not the one paying for it.

        Allocator growth, oneDNN primitive creation (and CUDA context set-up)
        make a first call several times slower than the rest; a live
        receiver would otherwise fall behind, or misjudge its budget, on it.
        """
        blank = torch.zeros(1, 3, *lowres_size)
        self.reproject(blank)
        z = self.reproject(blank).latents
        self.interpolate(z, z, [0.5])

    @torch.inference_mode()
    def interpolate(self, z0: torch.Tensor, z1: torch.Tensor, alphas: list[float]) -> torch.Tensor:
        """Decode g((1 - a) z0 + a z1) for each a; z0 and z1 are single codes (1, C, h, w)."""
        if not alphas:
            return torch.empty(0, 3, *self.size, device=self.device)
        out = []
        # In batches: a long gap must not become one giant batch of activations.
        for start in range(0, len(alphas), INTERPOLATION_BATCH):
            a = torch.tensor(alphas[start : start + INTERPOLATION_BATCH], dtype=z0.dtype, device=self.device)
            a = a.view(-1, *([1] * (z0.dim() - 1)))
            z = (1.0 - a) * z0.to(self.device) + a * z1.to(self.device)
            out.append(self._decode(z.contiguous(memory_format=self.memory_format)).clamp_(0.0, 1.0))
        return torch.cat(out)

    @torch.inference_mode()
    def bicubic(self, lowres: torch.Tensor) -> torch.Tensor:
        """The baseline: bicubic upsampling of the same low-res frames."""
        return upscale(self._prepare(lowres), self.size)
