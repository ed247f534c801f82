"""Which decoder plays a stream: the hello's payload type picks it.

File mode and the live receiver both call `make_decoder`, so a stream of
codes and a stream of low-res frames are told apart in one place. Which
network then reconstructs them is the model's architecture's business.
"""

from __future__ import annotations

from typing import Callable

import torch

from vsa.protocol.messages import Hello

from .inrv_stream import CodeDecoder
from .stream import SessionDecoder, StreamDecoder


def make_decoder(hello: Hello | None, device: torch.device | str, iterations: int | None = None,
                 back_project: str | None = None, with_baseline: bool = False, output_fps: float | None = None,
                 size: tuple[int, int] | None = None, batch: int = 8,
                 model_lookup: Callable[[bytes], bytes | None] | None = None, adapt: bool = True) -> SessionDecoder:
    """The decoder for the stream ``hello`` starts: codes (rendered) or low-res frames (reconstructed).

    ``size`` is the render size of a codes stream; a frames stream decodes
    at its own size, so asking for another is an error. ``adapt``: apply the
    model updates of a sender that adapts online.
    """
    if hello is not None and hello.payload == "codes":
        return CodeDecoder(device=device, size=size, output_fps=output_fps, model_lookup=model_lookup)
    if size is not None:
        raise ValueError("--size applies to INR-V streams only: a stream of low-res frames decodes at its own size")
    return StreamDecoder(device=device, iterations=iterations, back_project=back_project, batch=batch,
                         with_baseline=with_baseline, output_fps=output_fps, model_lookup=model_lookup, adapt=adapt)
