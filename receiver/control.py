"""The live receiver's control handler: hello, model chunks, model updates and bye, in order, on one task.

It feeds the worker's decoder (through the worker's queue, in order with the
frames), asks for the blobs the receiver lacks (resuming a transfer an
earlier session cut, from the cache), and once the model is in: caches it,
opens the recording, warms the model up, opens the window, and says `Ready`.
What the session must act on leaves through `ControlEvents`, so the handler
can be driven alone: push bytes, await `handle`, read what it sent and
called.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol

from vsa.common.bundle import BundleError
from vsa.protocol.errors import ProtocolError, SessionFailed
from vsa.protocol.messages import Bye, Hello, Message, ModelChunk, ModelRequest, ModelUpdate, Ready
from vsa.protocol.messages import decode as decode_message

from .cache import ModelCache
from .stream import SessionDecoder, StreamDecoder
from .worker import Worker

log = logging.getLogger("vsa.recv")

MAX_QUEUED = 4096
"""Control messages waiting to be handled; past this a peer's flood is counted as garbage, not stored."""


class ControlEvents(Protocol):
    """What the control channel tells the rest of the session."""

    def stream_started(self, hello: Hello) -> None:
        """A hello arrived: the stream's shape is known (before any model is requested)."""

    def update_received(self, nbytes: int) -> None:
        """A model update of ``nbytes`` was staged in the worker."""

    def stream_ending(self, frames: int) -> None:
        """The sender said bye after ``frames`` frames; raise ProtocolError if no stream started."""

    def failed(self, reason: str) -> None:
        """The session cannot go on (a model refused, a transfer corrupted)."""

    def refused(self) -> None:
        """A bad message was ignored."""


class ControlHandler:
    def __init__(self, worker: Worker, send: Callable[[Message], None], events: ControlEvents,
                 decoder_for: Callable[[Hello], SessionDecoder], cache: ModelCache | None = None,
                 output: str | None = None, on_stream: Callable[[int, int], None] | None = None) -> None:
        self.worker = worker
        self.send = send
        self.events = events
        self.decoder_for = decoder_for
        self.cache = cache
        self.output = output
        self.on_stream = on_stream
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_QUEUED)
        self.model_transferred = False
        self.model_resumed_at = 0
        """Where a model transfer cut in an earlier session was resumed from (bytes; 0: not resumed)."""

    @property
    def decoder(self) -> SessionDecoder:
        return self.worker.decoder

    def push(self, data: bytes) -> bool:
        """A control message arrived (from the channel's callback); False when the queue is full."""
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        return True

    async def run(self, done: asyncio.Event) -> None:
        """Handle the queued messages, in order, until the session is done."""
        while not done.is_set():
            await self.handle(await self.queue.get())

    async def handle(self, data: bytes) -> None:
        """One control message; errors become events, never exceptions."""
        try:
            msg = decode_message(data)
            if isinstance(msg, Hello) and self.decoder.hello is None:
                self.worker.decoder = self.decoder_for(msg)  # no frame can be queued before the hello
            if isinstance(msg, (Hello, ModelChunk)):
                await self.worker.call(self.decoder.feed, msg)
                if isinstance(msg, Hello):
                    self.events.stream_started(msg)
                    self._request_models(msg)
                if self.decoder.ready:
                    await self._model_ready()
            elif isinstance(msg, ModelUpdate):
                # Staged in the worker, in order with the frames: it applies between two of them.
                self.events.update_received(len(data))
                await self.worker.call(self.decoder.feed, msg)
            elif isinstance(msg, Bye):
                self.events.stream_ending(msg.frames)
            else:
                raise ProtocolError(f"{type(msg).__name__} does not belong on the control channel")
        except SessionFailed as exc:
            # Nothing can follow (the model is not the one the hello named): say why to both ends.
            self.send(self.decoder.session.bye(str(exc)))
            self.events.failed(f"session failed: {exc}")
        except ProtocolError as exc:
            log.warning("ignoring bad control message: %s", exc)
            self.events.refused()
        except BundleError as exc:
            self.events.failed(f"model rejected: {exc}")

    def _request_models(self, hello: Hello) -> None:
        """Ask for each blob the hello names that is not held here, from where a cut transfer stopped."""
        session = self.decoder.session
        for sha in session.wanted:  # the base first: a delta is useless without it
            log.info("%s %s not held here: requesting it", "model" if sha == hello.model_sha256 else "base model",
                     sha.hex()[:12])
            self.model_transferred = True
            offset = 0
            partial = self.cache.take_partial(sha) if self.cache is not None else None
            if partial:
                offset = session.resume(sha, partial)
                if offset:
                    log.info("resuming its transfer at byte %d of %d (an earlier session was cut)", offset,
                             session.wanted_size(sha))
            self.model_resumed_at = max(self.model_resumed_at, offset)
            self.send(ModelRequest(offset, sha))

    async def _model_ready(self) -> None:
        loop = asyncio.get_running_loop()
        decoder = self.decoder
        if self.cache is not None:
            for wire in decoder.received_blobs.values():
                await loop.run_in_executor(None, self.cache.put, wire)
        if self.output:
            height, width = decoder.output_size
            await self.worker.call(self.worker.open_writer, self.output, width, height, decoder.output_fps)
        if isinstance(decoder, StreamDecoder) and decoder.reconstructor is not None:
            h = decoder.hello
            await self.worker.call(decoder.reconstructor.warm_up, (h.height // h.scale, h.width // h.scale))
        if self.on_stream is not None:
            # Opening a window took 100 ms or more, and on the first frame that stall went into the playout
            # delay for seconds: open it now, while the sender waits for ready.
            await loop.run_in_executor(None, self.on_stream, *decoder.output_size)
        log.info("model loaded; ready for frames")
        self.send(Ready(adapt=isinstance(decoder, StreamDecoder) and decoder.adapt))
