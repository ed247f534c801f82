"""Which decoder plays a stream: the hello's payload type picks it.

File mode and the live receiver both call `make_decoder`, so an INR-V stream
and an autoencoder stream are told apart in one place.
"""

from __future__ import annotations

from typing import Callable

import torch

from vsa.common.bundle import Bundle
from vsa.protocol.messages import Hello

from .inrv_stream import CodeDecoder
from .stream import SessionDecoder, StreamDecoder


def make_decoder(hello: Hello | None, device: torch.device | str, iterations: int = 2, back_project: str = "auto",
                 with_baseline: bool = False, output_fps: float | None = None, size: tuple[int, int] | None = None,
                 batch: int = 8, model_lookup: Callable[[bytes], Bundle | None] | None = None) -> SessionDecoder:
    """The decoder for the stream ``hello`` starts: INR-V codes or autoencoder frames.

    ``size`` is the render size of an INR-V stream; an autoencoder stream
    decodes at its own size, so asking for another is an error.
    """
    if hello is not None and hello.payload == "inrv":
        return CodeDecoder(device=device, size=size, output_fps=output_fps, model_lookup=model_lookup)
    if size is not None:
        raise ValueError("--size applies to INR-V streams only: an autoencoder stream decodes at its own size")
    return StreamDecoder(device=device, iterations=iterations, back_project=back_project, batch=batch,
                         with_baseline=with_baseline, output_fps=output_fps, model_lookup=model_lookup)
