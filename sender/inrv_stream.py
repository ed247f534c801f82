"""The sender's INR-V pipeline: full-size frames in, one code message per clip out.

Frames are gathered into clips of the model's T frames. Each clip's code is
either the one learned for it in training (``codes="seen"``: the video being
sent is the one the model was trained on) or found by inversion
(``codes="invert"``: Adam on the code alone, warm-started from the previous
clip's code, for video the model has not seen). ``codes="auto"`` (what
`vsend` uses) takes the learned code while the source is the training video
and has one for the clip, and inverts otherwise. Codes are quantised to the
stream's code format (`vsa.protocol.codes`).

Live, inversion gets a time budget (``invert_seconds``) as well as a step
budget: each clip must be coded before the next one has been captured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vsa.common.bundle import Bundle
from vsa.common.video import fit_frame
from vsa.protocol.codes import CODE_FORMATS, pack_code
from vsa.protocol.messages import Bye, Frame, Hello, Message, fit_text
from vsa.protocol.session import SenderSession

from .shipment import Shipment
from .stream import MODEL_CHUNK, start_messages
from .train_inrv import invert

CODE_SOURCES = ("seen", "invert", "auto")
DEFAULT_INVERT_STEPS = 200


@dataclass(frozen=True)
class CodeSettings:
    codes: str = "seen"
    code_format: str = "f16"
    invert_steps: int = DEFAULT_INVERT_STEPS
    invert_seconds: float | None = None
    """Stop each clip's inversion after this long (None: run every step)."""

    def __post_init__(self) -> None:
        if self.codes not in CODE_SOURCES:
            raise ValueError(f"codes must be one of {', '.join(CODE_SOURCES)}, got {self.codes!r}")
        if self.code_format not in CODE_FORMATS:
            raise ValueError(f"code format must be one of {', '.join(CODE_FORMATS)}, got {self.code_format!r}")
        if self.invert_steps < 1:
            raise ValueError(f"invert steps must be at least 1, got {self.invert_steps}")
        if self.invert_seconds is not None and self.invert_seconds <= 0:
            raise ValueError(f"invert seconds must be positive, got {self.invert_seconds}")


class CodeEncoder:
    """Turns frames into the messages of an INR-V stream (same protocol as the autoencoder's)."""

    def __init__(self, bundle: Bundle, fps: float, settings: CodeSettings, frame_count: int = 0,
                 source: str = "", model_wire: bytes | None = None) -> None:
        if bundle.arch.payload != "codes":
            raise ValueError(f"this model is a {bundle.kind} model, not INR-V: train one with `vsa train --kind inrv`")
        self.bundle, self.settings = bundle, settings
        self.model = bundle.build()
        self.config = bundle.config
        size = bundle.meta.get("size")
        if not (isinstance(size, (list, tuple)) and len(size) == 2):
            raise ValueError("the INR-V bundle does not record its training size")
        self.size = (int(size[0]), int(size[1]))
        self.learned = bundle.state_dict.get("codes.mu")
        if settings.codes == "seen":
            if self.learned is None:
                raise ValueError("the bundle holds no learned codes; use --codes invert")
            trained = bundle.meta.get("frames_used")
            if frame_count and trained and frame_count > trained:
                raise ValueError(f"--codes seen: the model learned codes for {trained} frames, this video has "
                                 f"{frame_count}; use --codes invert for frames it has not seen")
        # Learned codes belong to the training video: "auto" uses them only for that source.
        self._use_learned = settings.codes == "seen" or (
            settings.codes == "auto" and self.learned is not None and bool(source)
            and source == bundle.meta.get("source"))
        self.shipment = Shipment(model_wire) if model_wire is not None else Shipment.of(bundle)
        self.model_wire = self.shipment.model
        self.frame_count = frame_count
        hello = Hello(width=self.size[1], height=self.size[0], fps=float(fps), scale=1,
                      stride=self.config.clip_frames, codec=settings.code_format, payload="codes",
                      frame_count=frame_count, source=fit_text(source), **self.shipment.hello_fields())
        self.session = SenderSession(hello)
        self._clip: list[np.ndarray] = []
        self._clip_start = 0
        self._clip_capture_us = 0
        self._previous: torch.Tensor | None = None
        self.codes_sent = 0
        self.codes_learned = 0
        self.payload_bytes = 0
        self.inversion_losses: list[list[float]] = []

    @property
    def hello(self) -> Hello:
        return self.session.hello

    def start(self, send_model: bool = True, chunk_size: int = MODEL_CHUNK) -> list[Message]:
        return start_messages(self.session, self.shipment, send_model, chunk_size)

    def push(self, pts: int, rgb: np.ndarray, capture_us: int = 0, last: bool = False) -> list[Frame]:
        """Offer source frame ``pts`` (any size: it is fitted to the model's); returns a code message per full clip.

        The message carries the clip's first pts and that frame's ``capture_us``.
        """
        if not self._clip:
            self._clip_start = pts
            self._clip_capture_us = capture_us
        self._clip.append(fit_frame(rgb, *self.size))
        if len(self._clip) == self.config.clip_frames or last:
            return [self._flush()]
        return []

    def warm_up(self) -> None:
        """Run two inversion steps on a blank clip, if this stream may invert.

        The first optimiser step costs about 2 s on a CPU (one-time set-up in
        torch); live, that would stall the first inverted clip far past its
        budget.
        """
        if self.settings.codes == "seen":
            return
        h, w = self.size
        invert(self.model, torch.zeros(self.config.clip_frames, h, w, 3), 2, points=64)

    def wants(self, pts: int, last: bool = False) -> bool:
        """Every frame goes into a clip."""
        return True

    def request_keyframe(self) -> None:
        """Every code stands alone (there is nothing to resynchronise), so this does nothing."""

    def finish(self, reason: str = "end of stream") -> list[Message]:
        out: list[Message] = [self._flush()] if self._clip else []
        bye: Bye = self.session.bye(reason)
        return out + [bye]

    def _flush(self) -> Frame:
        clip = torch.from_numpy(np.stack(self._clip)).float().div_(255)
        index = self._clip_start // self.config.clip_frames
        has_learned = self.learned is not None and index < len(self.learned)
        if self.settings.codes == "seen" and not has_learned:
            raise ValueError(f"clip {index} has no learned code; use --codes invert")
        if self._use_learned and has_learned:
            code = self.learned[index]
            self.codes_learned += 1
        else:
            code, losses = invert(self.model, clip, self.settings.invert_steps, init=self._previous,
                                  seed=index, seconds=self.settings.invert_seconds)
            self.inversion_losses.append(losses)
        self._previous = code
        payload = pack_code(code.tolist(), self.settings.code_format)
        self._clip = []
        self.codes_sent += 1
        self.payload_bytes += len(payload)
        return self.session.frame(self._clip_start, True, payload, self._clip_capture_us)
