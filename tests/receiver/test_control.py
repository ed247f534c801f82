"""The control handler alone: bytes in, then what it sent, what it told the session, and the worker's decoder."""

from __future__ import annotations

import dataclasses

from vsa.common import bundle as bundle_mod
from vsa.protocol.messages import Bye, Hello, ModelChunk, ModelRequest, Ready, encode
from vsa.receiver.cache import ModelCache
from vsa.receiver.control import ControlHandler
from vsa.receiver.decoder import make_decoder
from vsa.receiver.worker import Worker
from vsa.sender.stream import StreamEncoder, StreamSettings


class _Events:
    def __init__(self) -> None:
        self.started: list[Hello] = []
        self.ending: list[int] = []
        self.failures: list[str] = []
        self.refusals = 0
        self.update_bytes = 0

    def stream_started(self, hello: Hello) -> None:
        self.started.append(hello)

    def update_received(self, nbytes: int) -> None:
        self.update_bytes += nbytes

    def stream_ending(self, frames: int) -> None:
        self.ending.append(frames)

    def failed(self, reason: str) -> None:
        self.failures.append(reason)

    def refused(self) -> None:
        self.refusals += 1


def _handler(cache: ModelCache):
    sent, events = [], _Events()
    worker = Worker(lambda group, ready, adapt: None)
    decoder_for = lambda hello: make_decoder(hello, "cpu", batch=1, model_lookup=cache.get)  # noqa: E731
    worker.decoder = decoder_for(None)
    return ControlHandler(worker, sent.append, events, decoder_for, cache), sent, events, worker


async def test_a_hello_asks_for_the_model_and_its_chunks_end_in_ready_then_the_cache_answers(trained_bundle,
                                                                                           tmp_path):
    wire = bundle_mod.to_wire(trained_bundle[1])
    start = StreamEncoder(wire, (128, 192), 30.0, StreamSettings(scale=4, stride=2, codec="webp")).start()
    hello, chunks = start[0], [m for m in start if isinstance(m, ModelChunk)]
    cache = ModelCache(tmp_path / "cache")
    handler, sent, events, worker = _handler(cache)
    try:
        await handler.handle(encode(hello))
        assert events.started == [hello] and sent == [ModelRequest(0, hello.model_sha256)]
        assert handler.model_transferred
        for chunk in chunks:
            await handler.handle(encode(chunk))
        assert isinstance(sent[-1], Ready) and worker.decoder.ready
        assert cache.get(hello.model_sha256) == wire  # verified and kept for the next session
        # Garbage and a message that belongs elsewhere are refused, and nothing else changes.
        await handler.handle(b"\x00garbage")
        await handler.handle(encode(ModelRequest(0)))
        assert events.refusals == 2 and not events.failures
        await handler.handle(encode(Bye(frames=12)))
        assert events.ending == [12]
    finally:
        worker.shutdown()
    # A second session with the same model: ready at once, nothing requested.
    again, sent2, events2, worker2 = _handler(cache)
    try:
        await again.handle(encode(hello))
        assert [type(m) for m in sent2] == [Ready] and not again.model_transferred
    finally:
        worker2.shutdown()


async def test_a_model_not_matching_its_hash_fails_the_session_and_says_so(trained_bundle, tmp_path):
    wire = bundle_mod.to_wire(trained_bundle[1])
    start = StreamEncoder(wire, (128, 192), 30.0, StreamSettings(scale=4, stride=2, codec="webp")).start()
    hello, chunks = start[0], [m for m in start if isinstance(m, ModelChunk)]
    handler, sent, events, worker = _handler(ModelCache(tmp_path / "cache"))
    try:
        await handler.handle(encode(hello))
        last = chunks[-1]
        corrupted = dataclasses.replace(last, data=bytes(b ^ 0xFF for b in last.data))
        for chunk in [*chunks[:-1], corrupted]:
            await handler.handle(encode(chunk))
        assert events.failures and "does not match" in events.failures[0]
        assert isinstance(sent[-1], Bye) and "does not match" in sent[-1].reason  # the sender is told why
    finally:
        worker.shutdown()
