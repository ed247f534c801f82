import numpy as np
import pytest

from vsa.common.framecodec import (
    DEFAULT_CRFS, INTER_CODECS, FrameCodecError, FrameDecoder, FrameEncoder, check_lowres_size, model_crf,
)
from vsa.common.metrics import psnr
from vsa.common.resample import downscale, to_tensor, to_uint8
from vsa.common.video import read_video


@pytest.fixture(scope="module")
def lowres(small_frames):
    return to_uint8(downscale(to_tensor(small_frames[:20]), 4))


@pytest.mark.parametrize("codec, min_psnr", [("png", 99), ("webp", 28), ("h264", 31), ("vp9", 31)])
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


@pytest.mark.parametrize("codec", INTER_CODECS)
def test_inter_codecs_restart_at_the_next_keyframe_after_a_loss(lowres, codec):
    h, w = lowres.shape[1:3]
    enc, dec = FrameEncoder(codec, w, h, keyint=5), FrameDecoder(codec, w, h)
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


@pytest.mark.parametrize("codec", INTER_CODECS)
def test_joining_mid_stream_waits_for_a_keyframe(lowres, codec):
    h, w = lowres.shape[1:3]
    enc = FrameEncoder(codec, w, h, keyint=8)
    packets = [enc.encode(f)[0] for f in lowres]
    dec = FrameDecoder(codec, w, h)
    decoded = [i for i, p in enumerate(packets[3:], 3) if dec.decode(p.payload, p.keyframe) is not None]
    assert decoded[0] == 8


@pytest.mark.parametrize("codec", INTER_CODECS)
def test_a_requested_keyframe_comes_next(lowres, codec):
    h, w = lowres.shape[1:3]
    enc = FrameEncoder(codec, w, h, keyint=100)
    packets = [enc.encode(f)[0] for f in lowres[:4]]
    enc.request_keyframe()
    packets += [enc.encode(f)[0] for f in lowres[4:7]]
    assert [p.keyframe for p in packets] == [True, False, False, False, True, False, False]


def test_vp9_needs_fewer_bits_than_h264_for_the_same_low_res_quality(clip_path):
    """Why vp9 is the default payload: the README's "Payload codecs" table measures it on four clips."""
    frames, _, _ = read_video(clip_path, size=(192, 256))
    lowres = to_uint8(downscale(to_tensor(frames), 4))  # 48x64, as `vsa eval` sends the clip at scale 4
    h, w = lowres.shape[1:3]

    def run(codec: str) -> tuple[int, float]:
        enc, dec = FrameEncoder(codec, w, h, crf=DEFAULT_CRFS[codec]), FrameDecoder(codec, w, h)
        packets = [enc.encode(f)[0] for f in lowres]
        out = np.stack([dec.decode(p.payload, p.keyframe) for p in packets])
        return sum(len(p.payload) for p in packets), float(psnr(to_tensor(out), to_tensor(lowres)).mean())

    (vp9_bytes, vp9_psnr), (h264_bytes, h264_psnr) = run("vp9"), run("h264")
    assert vp9_psnr > h264_psnr - 0.5  # the defaults are about the same quality...
    assert vp9_bytes < 0.8 * h264_bytes  # ...and vp9 spends at least a fifth fewer bytes on it


def test_model_crf_puts_vp9_on_the_h264_scale():
    assert model_crf("h264", 28) == 28
    assert model_crf("webp", 90) == model_crf("png", 0) == model_crf("vp9", 0) == 0
    mapped = [model_crf("vp9", q) for q in range(1, 64)]
    assert mapped == sorted(mapped) and 1 <= mapped[0] and mapped[-1] <= 51
    assert abs(model_crf("vp9", DEFAULT_CRFS["vp9"]) - DEFAULT_CRFS["h264"]) <= 1


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
    check_lowres_size("vp9", 7, 4)
    with pytest.raises(ValueError, match="unknown codec"):
        check_lowres_size("mpeg2", 8, 8)


def test_a_vp9_keyframe_over_its_cap_is_coded_again_under_it(clip_path):
    """Live on a slow link a keyframe holds up every frame behind it: over the cap it is coarser, and the inter
    frames after it make up the quality (the README's rate-control section measures the display gaps)."""
    frames, _, _ = read_video(clip_path, size=(96, 128), limit=40)

    def stream(cap: int) -> tuple[list[int], float]:
        enc, dec = FrameEncoder("vp9", 128, 96, crf=20, keyint=100, keyframe_bytes=cap), FrameDecoder("vp9", 128, 96)
        sizes, out = [], []
        for frame in frames:
            (packet,) = enc.encode(frame)
            sizes.append(len(packet.payload))
            out.append(dec.decode(packet.payload, packet.keyframe))
        return sizes, float(psnr(to_tensor(np.stack(out)), to_tensor(frames)).mean())

    free, free_psnr = stream(0)
    roomy, _ = stream(free[0] + 1)
    capped, capped_psnr = stream(2000)
    assert free[0] > 2 * 2000  # the cap binds
    assert roomy == free  # a keyframe under its cap is coded at constant quality, as without one
    assert capped[0] <= 1.3 * 2000  # libvpx keeps to it within about a fifth
    assert capped_psnr > free_psnr - 1.0  # the inter frames refine what the keyframe left out
