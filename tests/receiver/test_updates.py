"""Model updates at the receiver: applied between frames, checked, and never the reason a stream stops."""

from dataclasses import replace

import torch

from vsa.common import bases
from vsa.common.update import make_update, state_digest
from vsa.protocol.messages import Frame, ModelUpdate
from vsa.receiver.stream import StreamDecoder
from vsa.sender.adapt import Update
from vsa.sender.adapt_options import AdaptSettings
from vsa.sender.stream import StreamEncoder, StreamSettings

UPDATE_AT = (5, 11)
"""Before these source frames the sender sends an update."""


def _stream(frames):
    """The shipped base at scale 4, with an update (weights nudged by a few grid steps) before each UPDATE_AT."""
    never = AdaptSettings(every=1e9)  # the adapter never trains here: the test makes the updates
    enc = StreamEncoder(bases.load_base()[0], frames.shape[1:3], 30.0, StreamSettings(scale=4, keyint=4),
                        frame_count=len(frames), adapt=never)
    adapter = enc.adapter
    msgs = enc.start()
    g = torch.Generator().manual_seed(0)
    for pts, frame in enumerate(frames):
        if pts in UPDATE_AT:
            target = {n: (v + torch.randn(v.shape, generator=g) * 4 * adapter.grid.steps[n]
                          if n in adapter.grid.steps else v) for n, v in adapter.current.items()}
            delta, state, changed = make_update(target, adapter.current, adapter.grid, keep=400)
            update = Update(delta, adapter.digest, state_digest(state), changed, 0.0)
            adapter.current, adapter.digest = state, update.result_sha256
            msgs.append(enc.update(update))
        msgs += enc.push(pts, frame, last=pts == len(frames) - 1)
    return msgs + enc.finish()


def _decode(msgs, **kwargs):
    dec = StreamDecoder(batch=4, **kwargs)
    return dec, [o for m in msgs for o in dec.feed(m)]


def test_updates_apply_between_frames_and_frames_before_them_keep_their_weights(small_frames):
    msgs = _stream(small_frames[:16])
    dec, out = _decode(msgs)
    frozen, still = _decode(msgs, adapt=False)
    assert dec.updates_applied == 2 and dec.model_version == 2 and dec.version_misses == 0
    assert frozen.updates_applied == 0 and frozen.version_misses == 16 - UPDATE_AT[0]
    # Frame 4 waited in the batch queue when update 1 arrived; it was reconstructed with version 0 all the same.
    for a, b in zip(out, still):
        same = torch.equal(a.frame, b.frame)
        assert same == (a.index < UPDATE_AT[0]), a.index
    assert [o.index for o in out] == list(range(16))


def test_a_corrupted_update_is_refused_and_the_old_model_plays_on(small_frames):
    msgs = _stream(small_frames[:16])
    bad = [replace(m, delta=m.delta[:-3] + bytes(3)) if isinstance(m, ModelUpdate) and m.version == 1 else m
           for m in msgs]
    dec, out = _decode(bad)
    _, still = _decode(msgs, adapt=False)
    # Update 2 applies to update 1's result, which this receiver never had: refused too.
    assert dec.updates_refused == 2 and dec.updates_applied == 0 and dec.model_version == 0 and dec.ended
    assert [o.index for o in out] == list(range(16))
    assert all(torch.equal(a.frame, b.frame) for a, b in zip(out, still))


def test_a_forged_result_digest_is_refused(small_frames):
    msgs = _stream(small_frames[:16])
    forged = [replace(m, result_sha256=b"\x07" * 32) if isinstance(m, ModelUpdate) and m.version == 2 else m
              for m in msgs]
    dec, _ = _decode(forged)
    assert dec.updates_applied == 1 and dec.updates_refused == 1 and dec.model_version == 1


def test_a_frame_ahead_of_its_update_is_decoded_with_the_model_the_receiver_has(small_frames):
    """Media is unordered and control is not: frame 5 (coded for version 1) arrives before update 1."""
    msgs = _stream(small_frames[:16])
    i = next(i for i, m in enumerate(msgs) if isinstance(m, ModelUpdate) and m.version == 1)
    assert isinstance(msgs[i + 1], Frame) and msgs[i + 1].model_version == 1
    msgs[i], msgs[i + 1] = msgs[i + 1], msgs[i]
    dec, out = _decode(msgs)
    assert dec.version_misses == 1 and dec.updates_applied == 2 and dec.model_version == 2
    assert [o.index for o in out] == list(range(16))
