"""`vsa bench codecs`: the payload codecs measured on real frames, rates as a stream counts them."""

from vsa.common.framecodec import round_trip
from vsa.common.resample import downscale, to_tensor, to_uint8
from vsa.common.video import read_video
from vsa.tools.bench import codec_curves, frame_message_bytes


def test_vp9_needs_fewer_bits_than_h264_for_the_low_res_stream_of_the_bundled_clip(clip_path):
    (row,) = codec_curves(clip_path, (128, 192), [4], second_half=True)
    assert row["lowres"] == "32x48"
    for codec in ("h264", "vp9"):
        points = row["curves"][codec]
        # Lower quality settings give fewer bits and lower PSNR: real curves, not one point repeated.
        assert [p["kbps"] for p in points] == sorted((p["kbps"] for p in points), reverse=True)
        assert points[0]["lowres_psnr"] > points[-1]["lowres_psnr"] + 6
    assert row["vp9_bd_rate_vs_h264"] < -10


def test_a_frame_is_counted_with_its_message_framing(clip_path):
    frames, info, _ = read_video(clip_path, size=(128, 192), limit=4)
    coded = round_trip("vp9", to_uint8(downscale(to_tensor(frames), 4)), info.fps, crf=30)
    assert coded.frames.shape == (4, 32, 48, 3) and len(coded.packets) == 4
    for pts, packet in enumerate(coded.packets):
        assert len(packet.payload) < frame_message_bytes(packet, pts) <= len(packet.payload) + 32
