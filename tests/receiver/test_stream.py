import pytest
import torch

from vsa.common import bundle as bundle_mod
from vsa.protocol.messages import Frame
from vsa.receiver.stream import Kind, StreamDecoder
from vsa.sender.stream import StreamEncoder, StreamSettings


def _messages(bundle, frames, stride, drop=()):
    wire = bundle_mod.to_wire(bundle)
    enc = StreamEncoder(wire, (128, 192), 30.0, StreamSettings(scale=4, stride=stride, codec="webp"),
                        frame_count=len(frames))
    msgs = enc.start()
    for pts, frame in enumerate(frames):
        msgs += enc.push(pts, frame, last=pts == len(frames) - 1)
    msgs += enc.finish()
    return [m for m in msgs if not (isinstance(m, Frame) and m.pts in drop)]


def _decode(msgs, **kwargs):
    dec = StreamDecoder(batch=4, **kwargs)
    out = [o for m in msgs for o in dec.feed(m)]
    return dec, out


def test_every_frame_comes_out_once_in_order(trained_bundle, small_frames):
    dec, out = _decode(_messages(trained_bundle[1], small_frames[:11], stride=3))
    assert [o.index for o in out] == list(range(11))
    kinds = [o.kind for o in out]
    assert [i for i, k in enumerate(kinds) if k is Kind.SENT] == [0, 3, 6, 9, 10]
    assert kinds.count(Kind.INTERPOLATED) == 6 and dec.ended


def test_lost_frames_are_interpolated_over(trained_bundle, small_frames):
    dec, out = _decode(_messages(trained_bundle[1], small_frames[:9], stride=1, drop={3, 4}))
    assert [o.index for o in out] == list(range(9))
    assert [o.kind for o in out][3:5] == [Kind.CONCEALED] * 2


def test_missing_first_frames_are_held(trained_bundle, small_frames):
    _, out = _decode(_messages(trained_bundle[1], small_frames[:5], stride=1, drop={0, 1}))
    assert [o.kind for o in out][:3] == [Kind.HELD, Kind.HELD, Kind.SENT]


def test_output_frame_rate_is_free(trained_bundle, small_frames):
    msgs = _messages(trained_bundle[1], small_frames[:10], stride=2)
    _, out = _decode(msgs, output_fps=60.0)
    assert [o.position for o in out] == pytest.approx([i / 2 for i in range(19)])
    assert sum(o.kind is Kind.SENT for o in out) == 6


def test_model_cache_skips_the_transfer(trained_bundle, small_frames):
    wire = bundle_mod.to_wire(trained_bundle[1])
    msgs = [m for m in _messages(trained_bundle[1], small_frames[:4], stride=1)
            if type(m).__name__ != "ModelChunk"]
    dec, out = _decode(msgs, model_lookup=lambda sha: wire if sha == bundle_mod.sha256(wire) else None)
    assert len(out) == 4 and dec.received_blobs == {}


def test_a_file_read_with_the_model_cached_skips_its_chunks(trained_bundle, small_frames):
    """A .vsa file carries the model for readers that lack it; one that holds it reads past the chunks."""
    wire = bundle_mod.to_wire(trained_bundle[1])
    msgs = _messages(trained_bundle[1], small_frames[:4], stride=1)
    assert any(type(m).__name__ == "ModelChunk" for m in msgs)
    dec, out = _decode(msgs, model_lookup=lambda sha: wire if sha == bundle_mod.sha256(wire) else None)
    assert len(out) == 4 and dec.received_blobs == {}


def test_frames_between_sent_ones_come_out_before_the_next_sent_one_is_rendered(trained_bundle, small_frames):
    """Live, one frame at a time: the interpolated frames form their own group, ahead of the sent frame
    whose code they need; the frames are those of a batched decode."""
    msgs = _messages(trained_bundle[1], small_frames[:7], stride=3)
    live = StreamDecoder(batch=1)
    groups = [group for m in msgs for group in live.feed_groups(m)]
    assert [[o.kind for o in g] for g in groups] == [
        [Kind.SENT], [Kind.INTERPOLATED] * 2, [Kind.SENT], [Kind.INTERPOLATED] * 2, [Kind.SENT]]
    _, batched = _decode(msgs)
    flat = [o for g in groups for o in g]
    assert [o.index for o in flat] == [o.index for o in batched] == list(range(7))
    for a, b in zip(flat, batched):
        assert torch.allclose(a.frame, b.frame, atol=1e-4)


def test_a_scale_switch_mid_stream_decodes_without_a_glitch(small_frames):
    """The shipped base, vp9, scale 4 then 2 from frame 24 (stride 1 then 2): every frame comes out, at the
    stream's size, and the frames around the switch are as good as their neighbours."""
    from vsa.common import bases
    from vsa.common.metrics import psnr
    from vsa.common.resample import to_tensor

    wire, _ = bases.load_base()
    frames = small_frames[:48]

    def stream(switch_at):
        enc = StreamEncoder(wire, (128, 192), 30.0, StreamSettings(scale=4, stride=1), frame_count=len(frames))
        msgs = enc.start()
        for pts, frame in enumerate(frames):
            if pts == switch_at:
                enc.switch(2, 2)
            msgs += enc.push(pts, frame, last=pts == len(frames) - 1)
        return msgs + enc.finish()

    msgs = stream(24)
    sent = [m for m in msgs if isinstance(m, Frame)]
    assert {m.scale for m in sent if m.pts < 24} == {0} and {m.scale for m in sent if m.pts >= 24} == {2}
    assert next(m for m in sent if m.pts >= 24).keyframe
    assert len([m for m in sent if m.pts >= 24]) == 13  # 24, 26, ..., 46, and the last (47)
    dec, out = _decode(msgs)
    assert [o.index for o in out] == list(range(48)) and dec.scale_switches == 1
    # The wider stride is no loss: nothing is labelled a concealment (the output clock ignores those's lags).
    assert not [o.index for o in out if o.kind is Kind.CONCEALED]
    assert all(tuple(o.frame.shape[-2:]) == (128, 192) for o in out)
    scores = psnr(torch.stack([o.frame for o in out]), to_tensor(frames)).tolist()
    before, around, after = scores[16:22], scores[22:28], scores[30:40]
    assert min(around) > min(before + after) - 1.0, (before, around, after)
    assert sum(after) / len(after) > sum(before) / len(before)  # scale 2 carries more than scale 4


def test_frames_between_sent_ones_the_sender_skipped_are_marked_bridged(trained_bundle, small_frames):
    """A sender under a target skips frames (it never codes them, and numbers the next one on): the receiver
    interpolates across the wider span, not as a loss, and marks those frames so the output clock does not
    lengthen its delay for them."""
    from dataclasses import replace

    msgs = _messages(trained_bundle[1], small_frames[:13], stride=2, drop={8})
    seq = 0
    for i, m in enumerate(msgs):  # what a skipping sender sends: no hole in the seqs
        if isinstance(m, Frame):
            msgs[i] = replace(m, seq=seq)
            seq += 1
    _, out = _decode(msgs)
    assert [o.index for o in out] == list(range(13))
    assert [o.kind for o in out][7:10] == [Kind.INTERPOLATED, Kind.SENT, Kind.INTERPOLATED] or \
        [o.kind for o in out][7:10] == [Kind.INTERPOLATED] * 3
    assert [o.index for o in out if o.bridged] == [7, 8, 9]
    assert not any(o.kind is Kind.CONCEALED for o in out)


def test_the_first_skip_of_a_stream_at_stride_1_is_bridged_too(trained_bundle, small_frames):
    """At stride 1 nothing is interpolated until the sender first skips (as while a queue on the path drains):
    the spans before it still say what the stride is, so the frames across the skip are not taken for what
    the path costs every frame."""
    from dataclasses import replace

    msgs = _messages(trained_bundle[1], small_frames[:12], stride=1, drop={5, 6, 7})
    seq = 0
    for i, m in enumerate(msgs):
        if isinstance(m, Frame):
            msgs[i] = replace(m, seq=seq)
            seq += 1
    _, out = _decode(msgs)
    assert [o.index for o in out] == list(range(12))
    assert [o.index for o in out if o.bridged] == [5, 6, 7]
