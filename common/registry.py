"""One place that knows every model architecture.

An architecture says, here and nowhere else:

* its config type, the bounds of that config, and the cap on its size
  (`Architecture.config_from_dict` counts the parameters on the meta device
  before anything is allocated, so a hostile config is refused for free);
* how to build the network from a config;
* what its stream carries (``payload``): low-res ``frames`` that the
  network's encoder f and decoder g reconstruct (reprojection, x <- g(f(x)),
  and latent interpolation for the frames in between), or one ``code`` per
  clip that the network renders;
* the frame-size multiple it needs;
* how it is prepared for inference (BatchNorm folding, memory format);
* how it trains: which objectives it knows, what a training batch is, and its
  loss (`vsa.sender.train` runs any of them with one loop).

The bundle, the wire form, file mode, the live ends, training and `vsa eval`
ask this registry; none of them branches on a network's type. The protocol
does not know that models exist beyond their hash and size. Adding an
architecture is a new module with a class decorated by `register`, imported
by `vsa.common.architectures`.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, ClassVar

import torch
from torch import nn

from .examples import Batch, Examples

PAYLOADS = ("frames", "codes")
MAX_ITERATIONS = 8
"""Most reprojection passes a receiver runs, whatever it is asked: more gain nothing (README, Results) and
only cost time; `--iterations` on every command line is checked against it."""
MAX_PARAMETERS = 40_000_000
"""Largest network any bundle or wire blob may describe: the paper's autoencoder (k=64) has 34M.

Checked on the config alone, before a single weight is allocated: a 200-byte
blob naming a 15-billion-parameter network is refused, not attempted."""


class FrameModel(nn.Module):
    """A network for a stream of low-res frames: encoder f and decoder g over frames in [0, 1].

    Reprojection iterates x <- g(f(x)) from the bicubic upsampling of the
    received frame; frames that were not sent are g of interpolated codes.
    """

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> codes."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes -> frames, unclamped (training sees the true error)."""
        raise NotImplementedError

    def recode(self, z: torch.Tensor) -> torch.Tensor:
        """One more reprojection pass on codes: f(clamp(g(z))). Architectures may take a shortcut."""
        return self.encode(self.decode(z).clamp(0.0, 1.0))

    def encode_lowres(self, low: torch.Tensor, size: tuple[int, int]) -> torch.Tensor | None:
        """f of the bicubic upsampling of ``low`` to ``size``, by a shortcut; None where there is none."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class Architecture:
    """What vsa needs to know about one kind of network. Subclass, fill in, decorate with `register`."""

    name: ClassVar[str]
    """Short name, as in ``vsa train --arch NAME`` and a bundle's ``kind``."""
    payload: ClassVar[str]
    """``frames`` or ``codes``: what the stream carries."""
    config_type: ClassVar[type]
    summary: ClassVar[str] = ""
    presets: ClassVar[dict[str, Any]] = {}
    """Named configs."""
    default_preset: ClassVar[str] = ""
    objectives: ClassVar[tuple[str, ...]] = ()
    """Training objectives it knows; the first is the default."""
    default_iterations: ClassVar[int] = 2
    """Reprojection passes a receiver runs by default (frames architectures)."""
    default_back_project: ClassVar[str] = "auto"
    """Back-projection onto the received frame by default (`vsa.receiver.reconstruct`)."""
    adapts: ClassVar[bool] = False
    """Whether a sender may fine-tune it online and stream updates (`vsa.sender.adapt`): a small network whose
    stream runs few weights. The paper's autoencoder (34M parameters) does not."""
    memory_format: ClassVar[torch.memory_format] = torch.contiguous_format
    """Layout its convolutions are fastest in on a CPU (measured; see the module of each architecture)."""

    # -- config and construction -------------------------------------------------------------

    def build(self, config: Any) -> nn.Module:
        raise NotImplementedError

    def size_multiple(self, config: Any) -> int:
        """Frame sides must be multiples of this."""
        return 1

    def preset(self, name: str | None = None) -> Any:
        name = name or self.default_preset
        try:
            return self.presets[name]
        except KeyError:
            raise ValueError(f"{self.name} has no preset {name!r}; choose one of {', '.join(self.presets)}") from None

    def reference_state(self, config: Any) -> dict[str, torch.Tensor]:
        """The state of the network ``config`` describes as meta tensors: names, shapes, dtypes, no storage.

        Cached per config: building a network costs 30 ms even on the meta
        device (its layers initialise), and a received blob needs the shapes
        twice (the size cap, then its tensor directory).
        """
        return dict(_reference_state(self, config))

    def parameter_count(self, config: Any) -> int:
        """Parameters (and buffers) of the network ``config`` describes, counted without allocating them."""
        return sum(t.numel() for t in self.reference_state(config).values())

    def config_from_dict(self, data: Any) -> Any:
        """A config from untrusted data (a file or a peer): its own bounds, then the size cap. ValueError if not."""
        if not isinstance(data, dict):
            raise ValueError(f"{self.name} model config must be a map, got {type(data).__name__}")
        config = self.config_type.from_dict(data)
        count = self.parameter_count(config)
        if count > MAX_PARAMETERS:
            raise ValueError(f"{self.name} model config describes {count:,} parameters; vsa accepts at most "
                             f"{MAX_PARAMETERS:,}")
        return config

    # -- inference ---------------------------------------------------------------------------

    def for_inference(self, model: nn.Module, scale: int = 4, crf: int = 0) -> FrameModel:
        """An eval-mode copy of ``model`` prepared for a receiver of a stream at ``scale`` whose payload was
        coded at ``crf`` (0: unknown): e.g. BatchNorm folded, or the branch for that scale."""
        return copy.deepcopy(model).eval().to(memory_format=self.memory_format)

    def stream_keys(self, config: Any, scale: int, keys: list[str]) -> list[str]:
        """Which of a state dict's ``keys`` a stream at ``scale`` runs (the ones online adaptation may change)."""
        return list(keys)

    def stream_state(self, state: dict[str, torch.Tensor], base: dict[str, torch.Tensor], config: Any,
                     scale: int) -> dict[str, torch.Tensor]:
        """The weights a stream at ``scale`` needs from a model fine-tuned from ``base`` (state dicts).

        Weights the stream never runs (`stream_keys`) are put back to the
        base's, so that a delta does not carry their changes.
        """
        used = set(self.stream_keys(config, scale, list(state)))
        return {k: (v if k in used or k not in base else base[k]) for k, v in state.items()}

    # -- training ----------------------------------------------------------------------------

    def check_objective(self, objective: str | None) -> str:
        objective = objective or self.objectives[0]
        if objective not in self.objectives:
            raise ValueError(f"unknown objective {objective!r}: {self.name} models train with "
                             f"{', '.join(self.objectives)}")
        return objective

    def training_batch(self, data: Examples, objective: str, batch_size: int, generator: torch.Generator,
                       step: int) -> Batch:
        """Step ``step``'s examples, on the CPU, cut from ``data``.

        Under data-parallel training every rank has its own ``generator`` (its
        own crops) but the same ``step``: a choice that must be the same on
        every rank (which branch of a network trains) derives from ``step``.
        """
        raise NotImplementedError

    def training_loss(self, model: nn.Module, batch: Batch, objective: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to minimise, MSE of the output to report as PSNR)."""
        mse = torch.nn.functional.mse_loss(model(batch.inputs), batch.targets)
        return mse, mse


_REGISTRY: dict[str, Architecture] = {}


@functools.lru_cache(maxsize=64)
def _reference_state(arch: Architecture, config: Any) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return arch.build(config).state_dict()


def register(cls: type[Architecture]) -> type[Architecture]:
    """Class decorator: make an architecture known to every part of vsa."""
    if cls.payload not in PAYLOADS:
        raise ValueError(f"{cls.__name__}.payload must be one of {PAYLOADS}, got {cls.payload!r}")
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"architecture {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _ensure_loaded() -> None:
    # The built-in architectures register themselves on import.
    from vsa.common import architectures  # noqa: F401


def names() -> list[str]:
    _ensure_loaded()
    return list(_REGISTRY)


def get(name: str) -> Architecture:
    """The architecture called ``name``; ValueError naming the known ones otherwise."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model architecture {name!r}; this vsa knows {', '.join(_REGISTRY)}") from None


def of_config(config: Any) -> Architecture:
    """The architecture whose config type ``config`` is."""
    _ensure_loaded()
    for arch in _REGISTRY.values():
        if isinstance(config, arch.config_type):
            return arch
    raise ValueError(f"no architecture has configs of type {type(config).__name__}")


def of_model(model: nn.Module) -> Architecture:
    """The architecture of a network built by `Architecture.build` (it carries its ``config``)."""
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError(f"{type(model).__name__} carries no config: build it through the registry")
    return of_config(config)


def unregister(name: str) -> None:
    """Remove an architecture (tests that register a toy one clean up with this)."""
    _REGISTRY.pop(name, None)
