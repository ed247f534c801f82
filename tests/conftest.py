"""Shared fixtures: the bundled real clip, and a small model trained on it once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vsa.common import bundle as bundle_mod
from vsa.common.assets import DEFAULT_CLIP
from vsa.common.model import AEConfig
from vsa.common.video import read_video
from vsa.sender.train import Trainer, TrainOptions

SMALL_SIZE = (128, 192)


@pytest.fixture(scope="session")
def clip_path() -> str:
    assert DEFAULT_CLIP.exists(), "the bundled clip is missing from common/assets"
    return str(DEFAULT_CLIP)


@pytest.fixture(scope="session")
def small_frames(clip_path: str) -> np.ndarray:
    """The first 48 frames of the bundled clip at 128x192."""
    frames, _, _ = read_video(clip_path, size=SMALL_SIZE, limit=48)
    return frames


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory, small_frames: np.ndarray) -> tuple[str, bundle_mod.Bundle]:
    """A k=6 model trained briefly on real frames, so its weights are realistic; saved to disk."""
    torch.manual_seed(0)
    options = TrainOptions(steps=120, objective="restore", seed=0, progress=False)
    trainer = Trainer(small_frames, AEConfig(k=6, preset="tiny"), options, torch.device("cpu"),
                      meta={"size": list(SMALL_SIZE), "source": "person_signing_webcam.mp4", "fps": 30.0})
    bundle = trainer.run()
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    bundle_mod.save(bundle, str(path))
    return str(path), bundle

SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


@pytest.fixture
def shared_video():
    """Returns a function: name -> path of a clip in ../shared/data/videos, skipping the test if absent."""

    def find(name: str) -> Path:
        path = SHARED_VIDEOS / name
        if not path.exists():
            pytest.skip(f"{path} is absent: the extra clips of ../shared/data/videos are not checked out here")
        return path

    return find


@pytest.fixture(scope="session")
def inrv_frames(clip_path: str) -> np.ndarray:
    """The first 40 frames of the bundled clip at 64x64: three clips of 16, the last one short."""
    frames, _, _ = read_video(clip_path, size=(64, 64), limit=40)
    return frames


@pytest.fixture(scope="session")
def inrv_bundle(tmp_path_factory: pytest.TempPathFactory, inrv_frames: np.ndarray) -> tuple[str, bundle_mod.Bundle]:
    """A small INR-V trained briefly on real frames, with its learned codes; saved to disk."""
    from vsa.common.inrv import INRVConfig
    from vsa.sender.train_inrv import INRVTrainer, INRVTrainOptions

    config = INRVConfig(code_dim=16, width=32, hyper_width=48)
    trainer = INRVTrainer(inrv_frames, config, INRVTrainOptions(steps=150, points=1024, progress=False), "cpu")
    model, codes = trainer.run()
    meta = {"source": "person_signing_webcam.mp4", "size": [64, 64], "fps": 30.0, "frames_used": len(inrv_frames)}
    bundle = bundle_mod.from_model(model, meta, extra={"codes.mu": codes})
    path = tmp_path_factory.mktemp("inrv") / "inrv.pt"
    bundle_mod.save(bundle, str(path))
    return str(path), bundle


@pytest.fixture(scope="session")
def sr_bundles(tmp_path_factory: pytest.TempPathFactory, small_frames: np.ndarray) -> tuple[str, bytes, bundle_mod.Bundle]:
    """A small sr base (not the shipped one) trained briefly on real frames, and a model fine-tuned from it.

    Returns (path of the fine-tuned bundle, the base's wire form, the fine-tuned bundle).
    """
    from vsa.common.examples import Examples
    from vsa.common.srnet import SRConfig

    config = SRConfig(scales=(4, 8), channels=8, decoder_layers=1, preset="test")
    examples = Examples.single(small_frames[:24], 30.0, scales=(4,))
    base = Trainer(examples, config, TrainOptions(steps=40, progress=False), torch.device("cpu")).run()
    base_wire = bundle_mod.to_wire(bundle_mod.Bundle(base.config, base.state_dict))
    tuned = Trainer(examples, config, TrainOptions(steps=30, seed=1, progress=False), torch.device("cpu"),
                    meta={"size": list(SMALL_SIZE), "source": "person_signing_webcam.mp4", "fps": 30.0},
                    base_wire=base_wire).run()
    path = tmp_path_factory.mktemp("sr") / "tuned.pt"
    bundle_mod.save(tuned, str(path))
    return str(path), base_wire, tuned
