"""The architecture registry: one place knows every network, and a new one needs nothing else changed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pytest
import torch
from torch import nn

from vsa.common import bundle as bundle_mod
from vsa.common import registry
from vsa.common.examples import Batch, Examples
from vsa.common.registry import MAX_PARAMETERS, Architecture, FrameModel


@dataclass(frozen=True)
class ToyConfig:
    gain: float = 1.0
    preset: str = "toy"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ToyConfig":
        gain = data.get("gain")
        if not isinstance(gain, float) or not 0.5 <= gain <= 2.0:
            raise ValueError(f"toy config has an invalid gain {gain!r}")
        return cls(gain, str(data.get("preset", "toy")))


class Toy(FrameModel):
    """The smallest frames network: f scales the frame by a learned factor, g undoes the config's gain."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.full((1,), config.gain))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.config.gain


class ToyArchitecture(Architecture):
    name = "toy"
    payload = "frames"
    config_type = ToyConfig
    presets = {"toy": ToyConfig()}
    default_preset = "toy"
    objectives = ("restore",)
    default_iterations = 1

    def build(self, config: ToyConfig) -> Toy:
        return Toy(config)

    def training_batch(self, data: Examples, objective: str, batch_size: int, generator: torch.Generator,
                       step: int) -> Batch:
        return data.crops(batch_size, generator, data.scales[0], data.crfs[0])


@pytest.fixture
def toy():
    registry.register(ToyArchitecture)
    yield registry.get("toy")
    registry.unregister("toy")


def test_every_shipped_architecture_is_known_by_name_and_config(toy):
    assert {"ae", "sr", "inrv", "toy"} <= set(registry.names())
    for name in registry.names():
        arch = registry.get(name)
        config = arch.preset()
        assert registry.of_config(config) is arch
        assert registry.of_model(arch.build(config)) is arch
    with pytest.raises(ValueError, match="unknown model architecture 'nope'"):
        registry.get("nope")


def test_a_new_architecture_streams_through_file_mode_untouched(toy, tmp_path, clip_path, small_frames):
    """A toy network added here, and nowhere else, trains, ships, encodes and decodes."""
    from vsa.protocol.container import ContainerReader
    from vsa.protocol.messages import Hello
    from vsa.sender.train import Trainer, TrainOptions
    from vsa.tools.cli import main

    trainer = Trainer(Examples.single(small_frames[:8]), ToyConfig(1.5), TrainOptions(steps=3, progress=False),
                      torch.device("cpu"), meta={"size": [128, 192]})
    model = str(tmp_path / "toy.pt")
    bundle_mod.save(trainer.run(), model)
    assert bundle_mod.load(model).kind == "toy"
    stream, report = tmp_path / "toy.vsa", tmp_path / "r.json"
    assert main(["encode", clip_path, "--model", model, "-o", str(stream), "--limit", "12"]) == 0
    assert main(["decode", str(stream), "--reference", clip_path, "--json", str(report), "--device", "cpu"]) == 0
    reader = ContainerReader()
    reader.feed(stream.read_bytes())
    hello = reader.next_message()
    assert isinstance(hello, Hello) and hello.payload == "frames"
    metrics = json.loads(report.read_text())["metrics"]["all"]
    assert metrics["frames"] == 12
    # g(f(x)) = w x / 1.5: three steps moved w a little from 1.5, so the output is near bicubic, not equal.
    assert abs(metrics["vsa_psnr"] - metrics["bicubic_psnr"]) < 3.0


def test_configs_are_bounded_before_anything_is_allocated():
    """A few bytes of config must not make vsa build a network of billions of parameters."""
    inrv = registry.get("inrv")
    hostile = dict(inrv.preset().to_dict(), width=1024, depth=8, hyper_width=2048)
    assert inrv.parameter_count(inrv.config_type.from_dict(hostile)) > 15e9  # counted, never built
    with pytest.raises(ValueError, match="parameters; vsa accepts at most"):
        inrv.config_from_dict(hostile)
    with pytest.raises(ValueError, match="parameters"):
        registry.get("ae").config_from_dict({"k": 256})
    assert registry.get("ae").parameter_count(registry.get("ae").preset("paper")) < MAX_PARAMETERS
