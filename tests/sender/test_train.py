import pytest
import torch

from vsa.common import bundle as bundle_mod
from vsa.common.metrics import psnr
from vsa.common.model import MAX_FACTOR, AEConfig, degrade
from vsa.sender.train import Trainer, TrainOptions, learning_rate


def test_schedule_is_constant_then_linear_decay():
    assert learning_rate(0, 100, 1.0) == 1.0
    assert learning_rate(49, 100, 1.0) == 1.0
    assert learning_rate(75, 100, 1.0) == pytest.approx(0.5)
    assert learning_rate(100, 100, 1.0) == 0.0


def test_degrade_blurs_but_keeps_shape(small_frames):
    from vsa.common.resample import to_tensor

    clean = to_tensor(small_frames[:6])
    inputs, lows = degrade(clean, torch.Generator().manual_seed(1))
    assert inputs.shape == clean.shape and len(lows) == 6
    assert all(low.shape[-1] <= clean.shape[-1] / 2 + 1 for low in lows)
    assert all(low.shape[-1] >= clean.shape[-1] / MAX_FACTOR - 1 for low in lows)
    assert float(psnr(inputs, clean).mean()) < 40  # really degraded


def test_options_are_validated(small_frames):
    with pytest.raises(ValueError, match="objective"):
        Trainer(small_frames[:4], AEConfig(k=4), TrainOptions(steps=1, objective="magic"), torch.device("cpu"))
    with pytest.raises(ValueError, match="exactly one"):
        TrainOptions(steps=1, minutes=1)


def _train(frames, steps, seed=0, resume=None, objective="restore"):
    options = TrainOptions(steps=steps, objective=objective, seed=seed, progress=False)
    trainer = Trainer(frames, AEConfig(k=4), options, torch.device("cpu"), resume=resume)
    return trainer, trainer.run()


def test_training_is_seeded_and_resumable(small_frames, tmp_path):
    frames = small_frames[:12, :64, :64].copy()
    _, straight = _train(frames, 8)
    _, again = _train(frames, 8)
    for k in straight.state_dict:
        assert torch.equal(straight.state_dict[k], again.state_dict[k]), k  # same seed, same weights
    # Stop after 4 of 8 steps, save, reload, finish: same weights as one straight run.
    options = TrainOptions(steps=8, objective="restore", seed=0, progress=False)
    half = Trainer(frames, AEConfig(k=4), options, torch.device("cpu"))
    for _ in range(4):
        half.train_step()
    path = str(tmp_path / "half.pt")
    bundle_mod.save(half.bundle(), path)
    resumed = Trainer(frames, AEConfig(k=4), options, torch.device("cpu"), resume=bundle_mod.load(path))
    assert resumed.step == 4
    final = resumed.run()
    for k in straight.state_dict:
        assert torch.allclose(straight.state_dict[k], final.state_dict[k], atol=1e-6), k


def test_training_lowers_the_loss_on_real_frames(small_frames):
    options = TrainOptions(steps=80, objective="reconstruct", seed=0, progress=False)
    trainer = Trainer(small_frames[:16], AEConfig(k=4), options, torch.device("cpu"))
    first = trainer.train_step()
    bundle = trainer.run()
    assert bundle.meta["steps"] == 80
    assert trainer.loss_ema < 0.5 * first
    assert bundle.meta["train_psnr"] > 15.0


def test_time_budget_stops_on_time(small_frames):
    import time

    options = TrainOptions(minutes=0.05, objective="reconstruct", progress=False)
    trainer = Trainer(small_frames[:8, :64, :64].copy(), AEConfig(k=4), options, torch.device("cpu"))
    start = time.monotonic()
    trainer.run()
    assert time.monotonic() - start < 3 * 60 * 0.05 + 5
    assert trainer.step > 10 and trainer.total_steps == trainer.step
