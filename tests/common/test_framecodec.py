import numpy as np
import pytest

from vsa.common.framecodec import FrameCodecError, FrameDecoder, FrameEncoder, check_lowres_size
from vsa.common.metrics import psnr
from vsa.common.resample import downscale, to_tensor, to_uint8


@pytest.fixture(scope="module")
def lowres(small_frames):
    return to_uint8(downscale(to_tensor(small_frames[:20]), 4))


@pytest.mark.parametrize("codec, min_psnr", [("png", 99), ("webp", 28), ("h264", 31)])
def test_round_trip(lowres, codec, min_psnr):
    h, w = lowres.shape[1:3]
    enc, dec = FrameEncoder(codec, w, h), FrameDecoder(codec, w, h)
    out = []
    for frame in lowres:
        packets = enc.encode(frame)
        assert len(packets) == 1  # one frame in, one payload out: no latency
        out.append(dec.decode(packets[0].payload, packets[0].keyframe))
    assert enc.flush() == []
    quality = psnr(to_tensor(np.stack(out)), to_tensor(lowres)).clamp(max=100).mean()
    assert quality >= min_psnr


def test_h264_restarts_at_the_next_keyframe_after_a_loss(lowres):
    h, w = lowres.shape[1:3]
    enc, dec = FrameEncoder("h264", w, h, keyint=5), FrameDecoder("h264", w, h)
    packets = [enc.encode(f)[0] for f in lowres]
    assert [i for i, p in enumerate(packets) if p.keyframe] == [0, 5, 10, 15]
    results = []
    for i, p in enumerate(packets):
        if i == 2:
            dec.lost()  # packet 2 never arrived
            continue
        results.append((i, dec.decode(p.payload, p.keyframe)))
    decoded = [i for i, r in results if r is not None]
    assert decoded == [0, 1] + list(range(5, 20))


def test_joining_mid_stream_waits_for_a_keyframe(lowres):
    h, w = lowres.shape[1:3]
    enc = FrameEncoder("h264", w, h, keyint=8)
    packets = [enc.encode(f)[0] for f in lowres]
    dec = FrameDecoder("h264", w, h)
    decoded = [i for i, p in enumerate(packets[3:], 3) if dec.decode(p.payload, p.keyframe) is not None]
    assert decoded[0] == 8


def test_garbage_payloads(lowres):
    h, w = lowres.shape[1:3]
    with pytest.raises(FrameCodecError):
        FrameDecoder("png", w, h).decode(b"\x89PNG garbage", True)
    dec = FrameDecoder("h264", w, h)
    assert dec.decode(b"\x00\x00\x01garbage" * 3, True) is None  # skipped, waits for a keyframe


def test_size_rules():
    with pytest.raises(ValueError, match="even"):
        check_lowres_size("webp", 7, 4)
    check_lowres_size("png", 7, 4)
    check_lowres_size("h264", 7, 4)
    with pytest.raises(ValueError, match="unknown codec"):
        check_lowres_size("mpeg2", 8, 8)
