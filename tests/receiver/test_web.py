"""`vrecv --web`: the viewer's server in process (token, bad offers, the frame feed), and the page in Chromium."""

from __future__ import annotations

import asyncio
import importlib.util

import numpy as np
import pytest
import torch

from vsa.common.webpage import MAX_FAILURES, TOKEN_HEADER, WebError
from vsa.receiver.stream import Kind, OutputFrame
from vsa.receiver.web import CLOCK_HZ, FeedTrack, FrameFeed, Viewer

aiohttp = pytest.importorskip("aiohttp", reason="vrecv --web needs the web extra: pip install 'vsa[web]'")


def _out(index: int, value: float = 0.5) -> OutputFrame:
    frame = torch.full((3, 16, 24), value)
    return OutputFrame(index, float(index), frame, Kind.SENT, baseline=frame * 0.5)


async def test_viewer_page_and_token():
    viewer = Viewer("127.0.0.1", 0, token="s3cret")
    await viewer.start()
    base = f"http://127.0.0.1:{viewer.server.port}"
    try:
        assert viewer.url.endswith("#token=s3cret")  # in the fragment: never sent to a server or in a Referer
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/") as r:
                assert r.status == 200 and "vsa viewer" in await r.text()
            async with http.get(base + "/viewer.js") as r:
                assert r.status == 200 and "RTCPeerConnection" in await r.text()
            async with http.get(base + "/missing.js") as r:
                assert r.status == 404
            async with http.get(base + "/stats") as r:
                assert r.status == 403
            good = {TOKEN_HEADER: "s3cret"}
            async with http.get(base + "/stats", headers=good) as r:
                stats = await r.json()
                assert r.status == 200 and stats["streaming"] is False and stats["viewers"] == 0
            # A bad offer is refused with its reason, and the server goes on.
            async with http.post(base + "/offer", json={"sdp": "v=0 garbage", "type": "offer"}, headers=good) as r:
                assert r.status == 400 and "offer" in (await r.json())["error"]
            async with http.post(base + "/offer", data=b"not json", headers=good) as r:
                assert r.status == 400
            assert not viewer.peers
            # Repeated wrong tokens from one address: refused after MAX_FAILURES, even with the right one.
            for _ in range(MAX_FAILURES):
                async with http.get(base + "/stats", headers={TOKEN_HEADER: "guess"}) as r:
                    assert r.status == 403
            async with http.get(base + "/stats", headers=good) as r:
                assert r.status == 403
    finally:
        await viewer.close()


def test_viewer_beyond_loopback_needs_a_token():
    with pytest.raises(WebError, match="needs a shared token"):
        Viewer("0.0.0.0", 0, token=None)


async def test_feed_converts_only_while_watched_and_wakes_tracks():
    feed = FrameFeed(clock=lambda: 1000.0)
    feed.publish(_out(0), {"fps": 30.0})
    assert feed.seq == 0 and feed.size == (16, 24) and feed.overlay == {"fps": 30.0}  # nobody watches: no work
    track, twin = FeedTrack(feed, "vsa"), FeedTrack(feed, "bicubic")
    assert feed.watchers == 2
    got = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    assert not got.done()  # waits for a frame newer than the one it joined at
    feed.publish(_out(7, 0.8), {})
    frame = await asyncio.wait_for(got, 1.0)
    rgb = frame.to_ndarray(format="rgb24")
    assert frame.pts == int(1000.0 * CLOCK_HZ) % (1 << 32) and abs(int(rgb.mean()) - 204) <= 2
    bicubic = (await asyncio.wait_for(twin.recv(), 1.0)).to_ndarray(format="rgb24")
    assert abs(int(bicubic.mean()) - 102) <= 2  # the baseline, not the reconstruction
    assert feed.timing[-1] == (frame.pts, 1000.0 * 1000.0, 7)
    track.stop()
    twin.stop()
    track.stop()  # twice: counted once
    assert feed.watchers == 0


def _chromium_missing() -> str | None:
    from vsa.tools.bench_web import find_chromium

    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install 'vsa[dev]')"
    if find_chromium() is None:
        return "Chromium is not installed (apt-get install chromium; .ci/run does)"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_chromium_missing() is not None, reason=str(_chromium_missing()))
def test_page_plays_what_vrecv_reconstructs(tmp_path):
    """vsend -> vrecv --web -> headless Chromium: the page plays, its picture is vrecv's, a viewer may leave."""
    from vsa.tools.bench_web import run_viewer

    result = run_viewer(seconds=12.0, grabs=3, workdir=str(tmp_path), steady=2.0)
    assert result["vrecv_exit"] == 0 and result["vsend_exit"] == 0, result
    assert result["frames_shown"] >= 30, result
    # The second viewer played, then left mid-stream; the first kept playing.
    assert result["second_viewer_frames"] >= 5 and result["frames_after_viewer_left"] > 0, result
    assert result["viewers_after_one_left"] == 1, result  # the page said it left; its encoder stopped
    assert result["grabs_matched"] >= 2, result
    # The browser's copy is vrecv's reconstruction, not a stale or other frame (measured: about 39.7 dB).
    assert min(result["page_vs_vrecv_psnr_db"]) >= 30.0, result
    # Against the source, the browser's copy is within 1 dB of vrecv's own (measured: 0.09-0.59 dB below).
    assert np.median(result["page_loss_vs_source_db"]) < 1.0, result
    assert result["page_latency_ms"]["n"] > 0, result
