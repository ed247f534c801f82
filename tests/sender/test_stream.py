import pytest

from vsa.common import bundle as bundle_mod
from vsa.protocol.messages import Bye, Frame, Hello, ModelChunk
from vsa.sender.stream import StreamEncoder, StreamSettings


def test_stream_sends_every_stride_th_frame_and_the_last(trained_bundle, small_frames):
    wire = bundle_mod.to_wire(trained_bundle[1])
    enc = StreamEncoder(wire, (128, 192), 30.0, StreamSettings(scale=4, stride=4, codec="h264"), frame_count=10)
    msgs = enc.start(chunk_size=100_000)
    assert isinstance(msgs[0], Hello) and all(isinstance(m, ModelChunk) for m in msgs[1:])
    assert b"".join(m.data for m in msgs[1:]) == wire
    frames = []
    for pts in range(10):
        frames += enc.push(pts, small_frames[pts], last=pts == 9)
    end = enc.finish()
    assert isinstance(end[-1], Bye) and end[-1].frames == 4
    assert [f.pts for f in frames] == [0, 4, 8, 9] and [f.seq for f in frames] == [0, 1, 2, 3]
    assert frames[0].keyframe and all(isinstance(f, Frame) for f in frames)
    assert enc.payload_bytes == sum(len(f.payload) for f in frames)


def test_cached_model_is_not_sent(trained_bundle):
    wire = bundle_mod.to_wire(trained_bundle[1])
    enc = StreamEncoder(wire, (128, 192), 30.0, StreamSettings())
    assert len(enc.start(send_model=False)) == 1


def test_settings_are_validated(trained_bundle):
    with pytest.raises(ValueError, match="scale"):
        StreamSettings(scale=0)
    wire = bundle_mod.to_wire(trained_bundle[1])
    with pytest.raises(ValueError, match="does not divide"):
        StreamEncoder(wire, (128, 192), 30.0, StreamSettings(scale=5))
    with pytest.raises(ValueError, match="even"):
        StreamEncoder(wire, (128, 192), 30.0, StreamSettings(scale=64, codec="webp"))
