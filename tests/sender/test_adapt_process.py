"""The live trainer in its own process: updates come back and apply, a full queue drops frames instead of
blocking, a broken child is reported, and `close` always ends the process."""

import time

import numpy as np
import pytest

from vsa.common import bases
from vsa.common import bundle as bundle_mod
from vsa.common.framecodec import FrameDecoder, FrameEncoder
from vsa.common.resample import downscale, to_tensor, to_uint8
from vsa.common.update import UpdateGrid, apply_update, state_digest
from vsa.common.video import read_video
from vsa.sender.adapt_options import AdaptSettings
from vsa.sender.adapt_process import FRAME_QUEUE, TrainerProcess

WAIT = 90.0
"""Seconds a test waits for the child at most (it imports torch, at a lower priority, on a busy machine)."""


@pytest.fixture(scope="module")
def sent_frames(clip_path):
    """The bundled clip at 128x192 and what a receiver decodes of it at scale 4 (vp9)."""
    frames, _, _ = read_video(clip_path, size=(128, 192))
    low = to_uint8(downscale(to_tensor(frames), 4))
    encoder, decoder = FrameEncoder("vp9", 48, 32), FrameDecoder("vp9", 48, 32)
    decoded = []
    for f in low:
        packet = encoder.encode(f)[0]
        decoded.append((decoder.decode(packet.payload, packet.keyframe), len(packet.payload)))
    return frames, decoded


def _until(condition, seconds: float = WAIT, step: float = 0.1) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return False


def test_updates_come_back_from_the_child_and_apply_to_what_the_receiver_holds(sent_frames):
    frames, decoded = sent_frames
    wire = bases.read_asset(bases.BASES[bases.DEFAULT_BASE])
    trainer = TrainerProcess(wire, {}, 4, "vp9", 30, 30.0, AdaptSettings(every=0.3, steps=20, share=0.5))
    try:
        assert _until(lambda: trainer.next_update(0.05) is None and trainer.ready), "the trainer never started"
        updates = []

        def feed_and_collect() -> bool:
            for pts, (frame, (low, size)) in enumerate(zip(frames, decoded)):
                trainer.observe(pts, frame, low, size)
                time.sleep(1 / 30)  # as a camera delivers them
                update = trainer.next_update(0)
                if update is not None:
                    updates.append(update)
            update = trainer.next_update(1.0)
            if update is not None:
                updates.append(update)
            return bool(updates)

        assert _until(feed_and_collect, step=0), "no update within the wait"
        assert trainer.stats.considered >= len(updates) and trainer.stats.steps >= 20
    finally:
        trainer.close()
    assert not trainer.alive
    # The chain applies to the base, as a receiver would apply it: each result's digest is the one it names.
    base = bundle_mod.from_wire(wire)
    state, grid = base.network_state(), UpdateGrid.for_model(base, 4)
    assert updates[0].base_sha256 == state_digest(state)
    for update in updates:
        assert update.base_sha256 == state_digest(state)
        state = apply_update(update.delta, state, grid)
        assert state_digest(state) == update.result_sha256


def test_a_trainer_that_cannot_keep_up_drops_frames_and_never_blocks_the_sender(sent_frames):
    frames, decoded = sent_frames
    wire = bases.read_asset(bases.BASES[bases.DEFAULT_BASE])
    trainer = TrainerProcess(wire, {}, 4, "vp9", 30, 30.0, AdaptSettings())
    try:
        started = time.monotonic()
        for pts in range(3 * FRAME_QUEUE):  # all at once, before the child has even imported torch
            low, size = decoded[pts % len(decoded)]
            trainer.observe(pts, frames[pts % len(frames)], low, size)
        assert trainer.dropped > 0
        assert time.monotonic() - started < WAIT  # bounded, and in practice milliseconds: nothing waited
    finally:
        trainer.close()
    assert not trainer.alive


def test_a_child_that_fails_is_reported_and_the_sender_goes_on():
    trainer = TrainerProcess(b"not a model", {}, 4, "vp9", 30, 30.0, AdaptSettings())
    try:
        assert _until(lambda: trainer.next_update(0.1) is None and trainer.failed), "the failure was not reported"
        assert trainer.next_update(0.1) is None  # and nothing more comes
    finally:
        trainer.close()
    assert not trainer.alive
