"""Two peers in one process over loopback: the whole live path, model cache, loss and garbage."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from vsa.common import webrtc
from vsa.common.bundle import sha256 as bundle_sha
from vsa.common.link import LinkSpec
from vsa.common.metrics import mean_psnr, psnr
from vsa.common.resample import to_tensor
from vsa.common.video import read_video
from vsa.protocol.fragment import fragment
from vsa.protocol.messages import Frame, Hello, ModelChunk, encode
from vsa.receiver.cache import ModelCache
from vsa.receiver.live import ReceiverOptions, serve
from vsa.sender.inrv_stream import CodeSettings
from vsa.sender.live import LiveSender, SenderOptions
from vsa.sender.stream import StreamSettings
from vsa.tools.filemode import decode_file, encode_file

pytestmark = pytest.mark.slow

FRAMES = 48


async def _session(model_path, clip, tmp_path, sessions=1, sender_options=None, receiver_options=None,
                   before_stream=None, sender_fails=False):
    """Stream ``clip`` from a `LiveSender` to `serve` over loopback, ``sessions`` times; (senders, reports).

    With ``sender_fails`` a sender's exception is kept in ``sender.failure`` instead of raised."""
    server = webrtc.SignalingServer("127.0.0.1", 0)
    await server.start()
    options = ReceiverOptions(listen=("127.0.0.1", server.port), cache=ModelCache(tmp_path / "cache"),
                              **(receiver_options or {}))
    receiving = asyncio.create_task(serve(options, sessions=sessions, server=server))
    senders = []
    try:
        for _ in range(sessions):
            sender = LiveSender(model_path, clip, SenderOptions(**{
                "connect": ("127.0.0.1", server.port), "bind": "127.0.0.1", "limit": FRAMES, "timeout": 20.0,
                "settings": StreamSettings(scale=4, stride=2), **(sender_options or {})}))
            if before_stream is not None:
                before_stream(sender)
            try:
                await asyncio.wait_for(sender.run(), 60)
            except Exception as exc:  # noqa: BLE001 - the caller asked for it
                if not sender_fails:
                    raise
                sender.failure = exc
            senders.append(sender)
        reports = await asyncio.wait_for(receiving, 30)
    finally:
        receiving.cancel()
        # Bounded: a session cancelled mid-stream still closes its peer connection.
        await asyncio.wait({receiving}, timeout=10)
        await server.close()
    return senders, reports


def _psnr_against(path, clip, size):
    out, _, _ = read_video(str(path))
    ref, _, _ = read_video(clip, size=size, limit=len(out))
    return out, float(mean_psnr(psnr(to_tensor(out), to_tensor(ref))))


async def test_two_peers_stream_every_frame_in_real_time_and_reuse_the_cached_model(trained_bundle, clip_path,
                                                                                    tmp_path):
    model_path, _ = trained_bundle
    out = tmp_path / "out.mp4"
    senders, reports = await _session(model_path, clip_path, tmp_path, sessions=2,
                                      receiver_options={"output": str(out)})
    first, second = reports
    assert first.error is None and second.error is None
    assert first.model_transferred and senders[0].report.model_sent
    # Reconnecting with the same model skips the transfer.
    assert not second.model_transferred and not senders[1].report.model_sent
    assert second.control_bytes < first.control_bytes / 10
    for r in reports:
        assert r.frames == FRAMES and r.counts["sent"] == FRAMES // 2 + 1 and r.lost == 0
        assert r.counts["interpolated"] + r.counts["sent"] == FRAMES
        assert max(r.display_gaps_ms) < 200
        assert 0 < r.latency(0.5) < 500
    frames, live_psnr = _psnr_against(out, clip_path, (128, 192))
    assert frames.shape == (FRAMES, 128, 192, 3)
    # The same settings offline (vsa encode + vsa decode) give the same picture.
    encode_file(clip_path, model_path, str(tmp_path / "c.vsa"), StreamSettings(scale=4, stride=2), limit=FRAMES)
    decode_file(str(tmp_path / "c.vsa"), str(tmp_path / "offline.mp4"), device="cpu")
    _, offline_psnr = _psnr_against(tmp_path / "offline.mp4", clip_path, (128, 192))
    assert abs(live_psnr - offline_psnr) < 0.5, (live_psnr, offline_psnr)


async def test_a_model_transfer_cut_in_the_middle_resumes_where_it_stopped(trained_bundle, clip_path, tmp_path,
                                                                           monkeypatch):
    model_path, _ = trained_bundle
    monkeypatch.setattr("vsa.sender.live.MODEL_CHUNK", 4096)  # many chunks, so the cut falls inside the model
    sent_before_cut = 3 * 4096

    def cut_the_first(sender) -> None:
        if getattr(cut_the_first, "done", False):
            return
        cut_the_first.done = True

        async def send_some(offset: int, sha256: bytes) -> None:  # the fault: three chunks, then the link dies
            wire = sender.shipment.blob(sha256)
            for chunk in sender.encoder.session.model_chunks(wire, 4096, offset)[:3]:
                sender._send_control(chunk)
            await asyncio.sleep(0.5)
            sender._end("the test cut the connection mid-transfer")

        sender._send_model = send_some

    senders, (cut, resumed) = await _session(model_path, clip_path, tmp_path, sessions=2,
                                             before_stream=cut_the_first, sender_fails=True)
    assert isinstance(senders[0].failure, ConnectionError) and cut.frames == 0
    wire_size = len(senders[1].wire)
    assert wire_size > 2 * sent_before_cut
    # The second session asked for the rest only, and its stream played whole.
    assert resumed.model_resumed_at == sent_before_cut and resumed.error is None
    assert senders[1].report.model_bytes == wire_size - sent_before_cut
    assert resumed.frames == FRAMES and resumed.lost == 0
    # Whole and verified, the model went into the cache; nothing partial is left.
    assert not list((tmp_path / "cache").glob("*.part")) and len(list((tmp_path / "cache").glob("*.vsam"))) == 1


async def test_with_no_model_the_shipped_base_streams_and_is_never_transferred(clip_path, tmp_path):
    """A camera's case: no training, no model to send; the receiver has the base already."""
    out = tmp_path / "base.mkv"
    senders, (report,) = await _session(None, clip_path, tmp_path, receiver_options={"output": str(out)},
                                        sender_options={"size": (128, 192)})
    assert report.error is None and report.frames == FRAMES and report.lost == 0
    assert not report.model_transferred and not senders[0].report.model_sent
    assert report.hello.base_sha256 == b"" and report.hello.payload == "frames"
    _, live_psnr = _psnr_against(out, clip_path, (128, 192))
    # Offline, the same stream (vsa encode with no --model) decodes to the same picture, above bicubic.
    encode_file(clip_path, None, str(tmp_path / "b.vsa"), StreamSettings(scale=4, stride=2), size=(128, 192),
                limit=FRAMES)
    offline = decode_file(str(tmp_path / "b.vsa"), None, device="cpu", reference=clip_path).metrics["all"]
    assert abs(live_psnr - offline["vsa_psnr"]) < 0.5, (live_psnr, offline)
    assert offline["vsa_psnr"] > offline["bicubic_psnr"] + 0.5, offline


async def test_a_stream_with_a_target_through_a_slow_emulated_link_plays_to_the_end(clip_path, tmp_path):
    """120 kbps with 30 ms of delay each way (every datagram of the connection, both directions), a 60 kbps
    target: every frame is shown, nothing is lost, and the sender keeps to the target."""
    link = LinkSpec.parse("rate=120k,delay=30ms,queue=64k")
    senders, (report,) = await _session(None, clip_path, tmp_path, sender_options={
        "size": (128, 192), "link": link, "adapt": None,
        "settings": StreamSettings(scale=4, stride=2, kbps=60.0)})
    sender = senders[0].report
    assert report.error is None and report.frames == FRAMES and report.lost == 0, report.summary()
    assert sender.targets and all(t <= 60.0 for _, t in sender.targets)
    assert sender.media_bytes * 8 / 1000 / sender.seconds < 60.0 * 1.15, sender.summary()


async def test_a_scale_switch_mid_stream_plays_live_without_a_gap(clip_path, tmp_path):
    """The sender moves from scale 4 to scale 2 after 16 frames, as its ladder does when the network allows:
    the receiver changes payload decoder and network branch between two frames, nothing is lost, the output
    keeps its size and frame rate, and it matches the same stream decoded offline."""
    out = tmp_path / "switch.mkv"

    def switch_later(sender):
        async def watch():
            while sender.encoder is None or sender.report.frames < 16:
                await asyncio.sleep(0.01)
            sender.encoder.switch(2, 2)
        asyncio.get_running_loop().create_task(watch())

    senders, (report,) = await _session(None, clip_path, tmp_path, receiver_options={"output": str(out)},
                                        sender_options={"size": (128, 192), "adapt": None,
                                                        "record": str(tmp_path / "sent.vsa")},
                                        before_stream=switch_later)
    assert report.error is None and report.frames == FRAMES and report.lost == 0, report.summary()
    assert report.scale_switches == 1 and senders[0].encoder.rung_switches == 1
    assert max(report.display_gaps_ms) < 200, max(report.display_gaps_ms)
    frames, live_psnr = _psnr_against(out, clip_path, (128, 192))
    assert frames.shape[1:3] == (128, 192)
    offline = decode_file(str(tmp_path / "sent.vsa"), None, device="cpu", reference=clip_path)
    assert offline.metrics["all"]["frames"] == FRAMES
    assert abs(live_psnr - offline.metrics["all"]["vsa_psnr"]) < 0.5, (live_psnr, offline.metrics["all"])


async def test_a_fine_tuned_model_travels_as_a_delta_with_its_base_once(sr_bundles, clip_path, tmp_path):
    """A base the receiver lacks is sent in full, then the delta; a second stream finds both cached."""
    model_path, base_wire, tuned = sr_bundles
    senders, reports = await _session(model_path, clip_path, tmp_path, sessions=2)
    first, second = reports
    assert first.error is None and second.error is None and first.frames == second.frames == FRAMES
    assert first.hello.base_sha256 == bundle_sha(base_wire)
    assert first.model_transferred and not second.model_transferred
    delta = senders[0].shipment.model
    # The first session's control channel carried both blobs (and a little more); the second, neither.
    assert first.control_bytes > len(base_wire) + len(delta) > 2 * second.control_bytes


async def test_a_sender_that_adapts_streams_updates_the_receiver_applies(sr_bundles, clip_path, tmp_path):
    """The trainer runs in its own process; its updates reach the receiver and apply, none refused."""
    from vsa.sender.adapt_options import AdaptSettings

    # The clip looped to 12 s: the trainer process takes a few seconds to start (torch's import), at a lower
    # priority than both peers, and then needs time for a few updates. Frames sent before it is ready are
    # dropped from its queue, not waited for.
    adapt = AdaptSettings(every=0.5, steps=40, share=0.5)
    recording, live = tmp_path / "sent.vsa", tmp_path / "live.mkv"
    senders, (report,) = await _session(sr_bundles[0], clip_path, tmp_path,
                                        sender_options={"adapt": adapt, "limit": 360, "loop": True,
                                                        "record": str(recording)},
                                        receiver_options={"output": str(live)})
    sender = senders[0].report
    # 359: a looping source has no known last frame to send, so the one after the last sent is not interpolated.
    assert report.error is None and report.frames == 359 and report.hello.adapt
    assert sender.adapt_considered >= sender.updates and sender.adapt_dropped < sender.frames_sent
    assert sender.updates >= 1, sender.summary()
    assert report.updates_applied == report.model_version == sender.updates and report.updates_refused == 0
    assert report.update_bytes > sender.update_bytes  # the deltas, in their messages
    # The recording (`vsend --record`) plays offline with the same updates, to the picture the receiver showed.
    offline = decode_file(str(recording), str(tmp_path / "offline.mkv"), device="cpu")
    assert offline.frames == report.frames and offline.updates["applied"] == sender.updates
    shown, _, _ = read_video(str(live))
    replayed, _, _ = read_video(str(tmp_path / "offline.mkv"))
    assert shown.shape == replayed.shape
    assert float(mean_psnr(psnr(to_tensor(shown), to_tensor(replayed)))) > 40
    # A receiver that does not apply updates says so, and the sender then adapts nothing: the stream plays.
    senders, (report,) = await _session(sr_bundles[0], clip_path, tmp_path,
                                        sender_options={"adapt": adapt, "limit": 109},
                                        receiver_options={"adapt": False})
    assert report.error is None and report.frames == 109 and senders[0].report.updates == 0


async def test_ten_percent_media_loss_with_fec_leaves_no_gap_over_200_ms(trained_bundle, clip_path, tmp_path):
    model_path, _ = trained_bundle
    clean, lossy = tmp_path / "clean.mp4", tmp_path / "lossy.mp4"
    await _session(model_path, clip_path, tmp_path, receiver_options={"output": str(clean)})
    senders, (report,) = await _session(model_path, clip_path, tmp_path, receiver_options={"output": str(lossy)},
                                        sender_options={"drop_media": 0.1, "seed": 3, "fec": "on"})
    sent = senders[0].report
    # Every frame went twice, and some of both kinds of copy were dropped.
    assert sent.datagrams_redundant >= FRAMES // 2 and sent.datagrams_dropped >= 3
    assert report.error is None and report.frames == FRAMES
    gaps = sorted(report.display_gaps_ms)
    print(f"display gaps: longest {gaps[-1]:.0f} ms; {report.lost} frames lost of {sent.datagrams_dropped} "
          "datagrams dropped")
    assert gaps[-1] <= 200, gaps[-5:]
    _, clean_psnr = _psnr_against(clean, clip_path, (128, 192))
    _, lossy_psnr = _psnr_against(lossy, clip_path, (128, 192))
    print(f"10% media loss with FEC: PSNR {lossy_psnr:.2f} dB against {clean_psnr:.2f} dB without loss")
    assert lossy_psnr > clean_psnr - 1.0


async def test_frames_lost_on_the_way_are_asked_for_and_sent_again(trained_bundle, clip_path, tmp_path):
    model_path, _ = trained_bundle
    senders, (report,) = await _session(model_path, clip_path, tmp_path,
                                        sender_options={"drop_media": 0.1, "seed": 3})
    sent = senders[0].report
    assert report.error is None and report.frames == FRAMES
    print(f"{report.repaired} frames repaired with {report.nacks} requests; {sent.frames_resent} sent again, "
          f"{report.lost} lost for good, {sent.datagrams_dropped} datagrams dropped")
    # The requests went on the media channel and were understood; most holes were repaired, not concealed.
    assert report.repaired >= 2 and sent.frames_resent >= report.repaired and sent.bad_feedback == 0
    assert report.lost < report.repaired
    assert report.keyframe_requests <= report.lost


async def test_without_repair_or_fec_losses_are_concealed_and_auto_fec_starts_after_the_first(
        trained_bundle, clip_path, tmp_path):
    model_path, _ = trained_bundle
    senders, (report,) = await _session(model_path, clip_path, tmp_path, receiver_options={"repair": False},
                                        sender_options={"drop_media": 0.1, "seed": 3})
    sent = senders[0].report
    assert report.error is None and report.frames == FRAMES
    # The first loss is concealed by interpolating across it; the keyframe request then turns FEC on.
    assert report.lost >= 1 and report.counts["concealed"] >= 1 and sent.keyframe_requests >= 1
    assert sent.datagrams_redundant > 0


async def test_a_model_not_matching_its_hash_ends_the_session_with_that_reason_at_both_ends(
        trained_bundle, clip_path, tmp_path):
    model_path, _ = trained_bundle

    def corrupt(sender):
        original = sender._send_control

        def send(msg):
            if isinstance(msg, ModelChunk) and msg.offset == 0:
                msg = replace(msg, data=bytes(len(msg.data)))  # zeros: same size, other bytes
            original(msg)

        sender._send_control = send

    senders, (report,) = await _session(model_path, clip_path, tmp_path, before_stream=corrupt, sender_fails=True)
    assert report.error == "session failed: model SHA-256 does not match the hello: transfer corrupted"
    assert report.frames == 0
    failure = senders[0].failure
    assert isinstance(failure, ConnectionError)
    assert str(failure) == "the receiver ended the session: model SHA-256 does not match the hello: transfer corrupted"


async def test_a_sender_task_that_fails_ends_the_stream_with_its_error(trained_bundle, clip_path, tmp_path):
    """A failed background task (here the model transfer) is said at once, not left to a timeout."""
    model_path, _ = trained_bundle

    def break_transfer(sender):
        async def send_model(offset, sha256):
            raise RuntimeError("the disk went away")

        sender._send_model = send_model

    senders, (report,) = await _session(model_path, clip_path, tmp_path, before_stream=break_transfer,
                                        sender_fails=True, receiver_options={"idle_timeout": 2.0})
    failure = senders[0].failure
    assert isinstance(failure, ConnectionError) and str(failure) == "sending the model failed: the disk went away"
    assert report.frames == 0 and report.error is not None  # the receiver, never sent a model, gave up


async def test_receiver_survives_garbage_on_both_channels(trained_bundle, clip_path, tmp_path):
    model_path, _ = trained_bundle
    hello = Hello(width=192, height=128, fps=30.0, scale=4, stride=2, codec="h264", model_sha256=b"\x01" * 32,
                  model_size=10)
    garbage_media = [b"", b"\xf7" * 5, np.random.default_rng(0).bytes(900), "text, not bytes",
                     *fragment(encode(hello), seq=70_000), *fragment(b"\x93not msgpack", seq=70_001),
                     *fragment(encode(Frame(seq=10**6, pts=10**6, keyframe=True, payload=b"x")), seq=70_002)]
    garbage_control = [b"\xc1", "a string", encode(hello), encode(Frame(seq=0, pts=0, keyframe=True, payload=b"x"))]

    def inject(sender):
        original = sender._send_frame

        async def send_with_garbage(msg):
            if msg.seq == 3:
                for g in garbage_media:
                    sender.media.send(g)
                for g in garbage_control:
                    sender.control.send(g)
            await original(msg)

        sender._send_frame = send_with_garbage

    _, (report,) = await _session(model_path, clip_path, tmp_path, before_stream=inject)
    assert report.error is None
    assert report.garbage >= 8
    assert report.frames == FRAMES and report.lost == 0


# -- INR-V codes over the same channels -------------------------------------------------------

INRV_FRAMES = 40  # what the conftest INR-V model was trained on: clips of 16, 16 and 8 frames


async def _inrv_session(model_path, clip, tmp_path, codes="auto", receiver_options=None, before_stream=None):
    return await _session(model_path, clip, tmp_path, receiver_options=receiver_options, before_stream=before_stream,
                          sender_options={"limit": INRV_FRAMES, "codes": CodeSettings(codes=codes)})


async def test_inrv_codes_stream_live_and_render_like_vsa_decode_at_another_size(inrv_bundle, clip_path, tmp_path):
    model_path, _ = inrv_bundle
    out = tmp_path / "live.mp4"
    (sender,), (report,) = await _inrv_session(model_path, clip_path, tmp_path,
                                               receiver_options={"output": str(out), "size": (128, 128)})
    assert report.error is None and report.hello.payload == "codes"
    # "auto" sent the codes learned for the training video, one per clip, each one datagram.
    assert sender.encoder.codes_learned == 3 and sender.report.datagrams == 3
    assert report.frames == INRV_FRAMES and report.counts["sent"] == INRV_FRAMES and report.lost == 0
    kbps = sender.report.media_bytes * 8 / 1000 / (INRV_FRAMES / 30)
    assert kbps < 5.0, kbps
    # The same codes rendered offline at the same size give the same picture.
    encode_file(clip_path, model_path, str(tmp_path / "c.vsa"), StreamSettings(), limit=INRV_FRAMES,
                codes=CodeSettings(codes="seen"))
    decode_file(str(tmp_path / "c.vsa"), str(tmp_path / "offline.mp4"), device="cpu", size=(128, 128))
    frames, live_psnr = _psnr_against(out, clip_path, (128, 128))
    _, offline_psnr = _psnr_against(tmp_path / "offline.mp4", clip_path, (128, 128))
    assert frames.shape == (INRV_FRAMES, 128, 128, 3)
    assert abs(live_psnr - offline_psnr) < 0.5, (live_psnr, offline_psnr)


async def test_inrv_live_inversion_keeps_up_and_a_lost_code_is_concealed(inrv_bundle, clip_path, tmp_path):
    model_path, _ = inrv_bundle

    def lose_second_code(sender):
        original = sender._send_frame

        async def send(msg):
            if msg.seq != 1:
                await original(msg)

        sender._send_frame = send

    (sender,), (report,) = await _inrv_session(model_path, clip_path, tmp_path, codes="invert",
                                               before_stream=lose_second_code)
    assert report.error is None
    assert sender.encoder.codes_learned == 0 and len(sender.encoder.inversion_losses) == 3
    # Each clip's inversion stopped within its time budget (3/4 of the clip's 0.53 s), so it kept up.
    budget = sender.encoder.settings.invert_seconds
    assert budget == pytest.approx(0.75 * 16 / 30)
    assert report.frames == INRV_FRAMES and report.lost == 1
    # The lost clip's 16 frames hold the last frame shown until the next code.
    assert report.counts["concealed"] == 16 and report.counts["sent"] == INRV_FRAMES - 16


def test_vsend_refuses_seen_codes_for_frames_the_model_never_saw(inrv_bundle, clip_path, capsys):
    from vsa.sender.cli import main as vsend_main

    model, _ = inrv_bundle  # learned codes for 40 frames; the clip is longer
    assert vsend_main(["--model", model, clip_path, "--codes", "seen", "--connect", "127.0.0.1:9"]) == 2
    assert "--codes invert" in capsys.readouterr().err


async def test_a_coding_error_mid_stream_ends_the_sender_with_that_error(inrv_bundle, tmp_path):
    model_path, _ = inrv_bundle
    # A lavfi source has no length, so "seen" codes run out at the 4th clip (the model learned 3).
    with pytest.raises(ValueError, match="no learned code"):
        await _session(model_path, "lavfi:testsrc2=size=64x64:rate=30", tmp_path,
                       sender_options={"limit": 80, "codes": CodeSettings(codes="seen")})


async def test_a_bad_offer_does_not_end_a_server_and_the_next_stream_plays(trained_bundle, clip_path, tmp_path):
    """One session's failure (here an offer whose SDP is garbage) never ends `vrecv --sessions 0`."""
    import os
    import time

    from vsa.protocol.signaling import encode_signal, make_offer

    model_path, _ = trained_bundle
    server = webrtc.SignalingServer("127.0.0.1", 0)
    await server.start()
    options = ReceiverOptions(listen=("127.0.0.1", server.port), cache=ModelCache(tmp_path / "cache"))
    receiving = asyncio.create_task(serve(options, sessions=2, server=server))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode_signal(make_offer("v=0 this is not an SDP", None, os.urandom(16), time.time())))
        await writer.drain()
        await asyncio.wait_for(reader.read(), 10)  # the server hangs up on it
        writer.close()
        sender = LiveSender(model_path, clip_path, SenderOptions(
            connect=("127.0.0.1", server.port), bind="127.0.0.1", limit=FRAMES, timeout=20.0,
            settings=StreamSettings(scale=4, stride=2)))
        await asyncio.wait_for(sender.run(), 60)
        failed, played = await asyncio.wait_for(receiving, 30)
    finally:
        receiving.cancel()
        await asyncio.wait({receiving}, timeout=10)
        await server.close()
    assert failed.error and "session failed" in failed.error
    assert played.error is None and played.frames == FRAMES
