"""`vsend --record`: the stream a live sender sends, written as a `.vsa` file that `vsa decode` plays.

The file holds what `vsa encode` would write for the same frames: the hello,
every blob a receiver may lack (so the file plays on a machine that never saw
the stream), then the frames and model updates in the order they were sent,
then the bye. Frames skipped because the path was congested are left out, as
the receiver never saw them; frames a lossy network dropped are in, as sent.
"""

from __future__ import annotations

import os

from vsa.protocol.container import file_header, record
from vsa.protocol.messages import Bye, Frame, Hello, Message, ModelUpdate
from vsa.protocol.session import SenderSession

from .shipment import Shipment
from .stream import start_messages

RECORDED = (Frame, ModelUpdate, Bye)
"""What a recording keeps of the stream after its start (keyframe requests, stats and the like are not the
stream)."""


class Recorder:
    """Appends a live stream's messages to ``path``; the file appears under its name once closed."""

    def __init__(self, path: str, hello: Hello, shipment: Shipment) -> None:
        self.path = path
        self._tmp = f"{path}.tmp-{os.getpid()}"
        self._file = open(self._tmp, "wb")
        self._file.write(file_header())
        # A session of its own: the live one sends the model only if the receiver asks, the file always has it.
        for msg in start_messages(SenderSession(hello), shipment, send_model=True):
            self._file.write(record(msg))
        self.messages = 0

    def write(self, msg: Message) -> None:
        """One message as it was sent (only those in `RECORDED` are kept)."""
        if isinstance(msg, RECORDED):
            self._file.write(record(msg))
            self.messages += 1

    def close(self) -> None:
        """Finish the file. A stream cut short still gives a file, which plays up to where it ends."""
        if not self._file.closed:
            self._file.close()
            os.replace(self._tmp, self.path)
