"""Training any frames architecture (`vsa.common.registry`) on the frames of one video, or of many.

The architecture says what a batch is and what the loss is; this module runs
the loop: the schedule (Adam, constant learning rate for the first half of
the budget, then linear decay to zero, the paper's shape scaled to the
budget), step and time budgets, checkpoints, resuming, the progress bar, and
data-parallel training across processes.

* From scratch: the paper's autoencoder on one video (``vsa train``).
* From a base (``init``): fine-tuning a generic model on one video (``vsa
  train --base``), with a fresh optimiser. The result remembers its base, so
  its wire form is a delta against it.
* Many clips, many processes: ``vsa pretrain`` under ``torchrun``. Each
  process trains on its own shard of the clips; DistributedDataParallel
  averages the gradients, and the time budget's decisions (how many steps
  fit, when to stop) are taken by rank 0 and broadcast, so every rank takes
  the same steps and ends with the same weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from vsa.common import registry
from vsa.common.bundle import Bundle, from_model, from_wire
from vsa.common.examples import Examples
from vsa.common.metrics import psnr_from_mse

# The paper's 2e-4 suits 200 epochs on a GPU; for budgets of minutes 2e-3 reached
# 3-4 dB higher PSNR in the same time on our clips (README, "Training").
LEARNING_RATE = 2e-3
BATCH_SIZES = {"ae": 6, "sr": 16}
"""Frames per step (the autoencoder, whole frames) or crops per step (sr); other architectures: 8."""
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
    objective: str | None = None
    """One of the architecture's objectives; None takes its default."""
    seed: int = 0
    batch_size: int | None = None
    """None: the architecture's (`BATCH_SIZES`)."""
    lr: float = LEARNING_RATE
    checkpoint_seconds: float = 60.0
    progress: bool = True

    def __post_init__(self) -> None:
        check_budget(self.steps, self.minutes)


def learning_rate(step: int, total: int, base: float = LEARNING_RATE) -> float:
    """Constant for the first half of training, then linear decay to zero."""
    half = total / 2
    if step < half:
        return base
    return base * max(0.0, (total - step) / (total - half))


def distributed() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) when not running under torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over a model's weights: equal on two ranks exactly when their weights are."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Trainer:
    """Holds the model, optimizer and schedule; resumable from a bundle's train_state.

    ``data`` is an `Examples` (or the frames of one video); ``base_wire`` is
    the wire form of a base to start from (fine-tuning): training starts from
    exactly the weights a receiver decodes from it, so weights that do not
    move cost nothing in the delta.
    """

    def __init__(
        self,
        data: Examples | np.ndarray,
        config,
        options: TrainOptions,
        device: torch.device,
        meta: dict | None = None,
        resume: Bundle | None = None,
        base_wire: bytes | None = None,
    ) -> None:
        self.examples = data if isinstance(data, Examples) else Examples.single(data)
        self.arch = registry.of_config(config)
        if self.arch.payload != "frames":
            raise ValueError(f"{self.arch.name} models train with their own trainer (`vsa train --kind inrv`)")
        self.objective = self.arch.check_objective(options.objective)
        self.options = options
        self.batch_size = options.batch_size or BATCH_SIZES.get(self.arch.name, 8)
        self.device = device
        self.meta = dict(meta or {})
        self.rank, self.world = distributed()
        torch.manual_seed(options.seed)
        # Every rank builds the same initial weights; each draws its own batches.
        self.generator = torch.Generator().manual_seed(options.seed + 1000 * self.rank)
        self.model = self.arch.build(config).to(device)
        self.base_wire = base_wire
        if base_wire is not None:
            base = from_wire(base_wire)
            if base.config != config:
                raise ValueError(f"the base is a {base.config} model, not {config}")
            self.model.load_state_dict(base.network_state())
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=options.lr)
        self.step = 0
        self.total_steps = options.steps or 0
        self.elapsed = 0.0
        self.loss_ema: float | None = None
        if resume is not None:
            self._restore(resume)
        self.network = self.model
        if self.world > 1:
            # Wraps after any restore, so every rank starts from rank 0's weights (DDP broadcasts them).
            # Unused parameters: a step may train one branch of a network (the sr architecture's scales).
            self.network = torch.nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=True)

    def _restore(self, bundle: Bundle) -> None:
        state = bundle.train_state
        if not state:
            raise ValueError("that model has no training state to resume from (it was saved without one)")
        if bundle.config != self.model.config:
            raise ValueError(f"cannot resume a {bundle.config} model as {self.model.config}")
        self.model.load_state_dict(bundle.network_state())
        self.base_wire = bundle.base_wire
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["rng"])
        self.step = int(state["step"])
        self.total_steps = int(state["total_steps"])
        self.elapsed = float(state["elapsed"])
        self.loss_ema = state.get("loss_ema")

    def bundle(self, with_state: bool = True) -> Bundle:
        meta = dict(self.meta, steps=self.step, seconds=round(self.elapsed, 1), objective=self.objective)
        if self.loss_ema is not None:
            meta["train_psnr"] = round(psnr_from_mse(self.loss_ema), 3)
        bundle = from_model(self.model, meta, base_wire=self.base_wire)
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
        batch = self.arch.training_batch(self.examples, self.objective, self.batch_size, self.generator, self.step)
        batch = batch.to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.total_steps, self.options.lr)
        self.network.train()
        loss, mse = self.arch.training_loss(self.network, batch, self.objective)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        # The progress bar and bundle report PSNR of the network's own output,
        # so track that MSE rather than the summed loss.
        value = float(mse.detach())
        self.loss_ema = value if self.loss_ema is None else 0.95 * self.loss_ema + 0.05 * value
        return float(loss.detach())

    def _agree(self, total_steps: int) -> int:
        """Rank 0's step count, on every rank: each rank's clock differs, their steps must not."""
        if self.world == 1:
            return total_steps
        value = torch.tensor([total_steps], dtype=torch.int64)
        dist.broadcast(value, src=0)
        return int(value)

    def run(self, on_checkpoint: Callable[[Bundle], None] | None = None) -> Bundle:
        """Train to the budget; call ``on_checkpoint`` (on rank 0) every checkpoint_seconds and at the end."""
        opts = self.options
        deadline = None
        if opts.minutes is not None:
            deadline = time.monotonic() + max(0.0, opts.minutes * 60.0 - self.elapsed)
            if not self.total_steps:
                self.total_steps = 10**9  # replaced once the first steps are timed
        lead = self.rank == 0
        bar = None
        if opts.progress and lead:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps if opts.steps else None, initial=self.step, unit="step",
                       desc="training", dynamic_ncols=True, mininterval=1.0)
        last_save = time.monotonic()
        started = time.monotonic() - self.elapsed
        run_start, run_start_step = time.monotonic(), self.step
        while self.step < self.total_steps:
            done = self.step - run_start_step
            if deadline is not None and done % TIMING_STEPS == 0:
                # Re-estimate the step count that fits the time left, so the learning-rate decay
                # ends when the time budget does (rank 0 decides for all).
                now = time.monotonic()
                total = self.total_steps
                if now >= deadline:
                    total = self.step
                elif done >= TIMING_STEPS:
                    per_step = (now - run_start) / done
                    total = max(self.step + 1, self.step + int((deadline - now) / per_step))
                self.total_steps = self._agree(total)
                if bar is not None:
                    bar.total = self.total_steps
                if self.step >= self.total_steps:
                    break
            self.train_step()
            self.elapsed = time.monotonic() - started
            if bar is not None:
                bar.update(1)
                # refresh=False: let mininterval pace redraws, or a log file gets a line per step.
                bar.set_postfix(loss=f"{self.loss_ema:.5f}", psnr=f"{psnr_from_mse(self.loss_ema):.2f}dB", refresh=False)
            if lead and on_checkpoint is not None and time.monotonic() - last_save >= opts.checkpoint_seconds:
                on_checkpoint(self.bundle())
                last_save = time.monotonic()
        if bar is not None:
            bar.close()
        # A time budget that ran out early still ends with the decayed learning rate's model;
        # record the step count actually reached so a resume does not run on.
        self.total_steps = min(self.total_steps, self.step) if deadline is not None else self.total_steps
        final = self.bundle()
        if lead and on_checkpoint is not None:
            on_checkpoint(final)
        return final
