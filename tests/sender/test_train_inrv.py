"""INR-V training and inversion on real frames."""

from __future__ import annotations

import torch

from vsa.common.inrv import INRVConfig
from vsa.sender.train_inrv import INRVTrainer, INRVTrainOptions, clip_psnr, invert, split_clips, stage_sizes


def test_progressive_stages_grow_to_every_clip():
    assert stage_sizes(1, 2) == [1]
    assert stage_sizes(6, 2) == [1, 2, 4, 6]
    assert stage_sizes(100, 10) == [1, 10, 100]


def test_training_fits_the_clips_better_than_the_untrained_network(inrv_frames):
    config = INRVConfig(code_dim=16, width=32, hyper_width=48)
    trainer = INRVTrainer(inrv_frames, config, INRVTrainOptions(steps=150, points=1024, progress=False), "cpu")
    before = trainer.clip_psnr()
    trainer.run()
    after = trainer.clip_psnr()
    assert len(after) == 3  # 40 frames: clips of 16, 16 and 8
    assert min(a - b for a, b in zip(after, before)) > 3.0, (before, after)


def test_inversion_lowers_the_error_on_a_clip(inrv_bundle, clip_path):
    from vsa.common.video import read_video

    _, bundle = inrv_bundle
    model = bundle.build()
    # Frames 48-63 of the real clip: beyond the 40 the model was trained on.
    frames, _, _ = read_video(clip_path, size=(64, 64), limit=64)
    clip = split_clips(frames[48:64], 16)[0]
    start = torch.zeros(bundle.config.code_dim)
    code, losses = invert(model, clip, steps=60, init=start, points=1024)
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:5]) / 5
    assert clip_psnr(model, code, clip) > clip_psnr(model, start, clip)
