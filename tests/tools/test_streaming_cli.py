"""`vrecv` and `vsend` as two processes on loopback, and `vrecv --display` under Xvfb."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from vsa.common.metrics import mean_psnr, psnr
from vsa.common.resample import to_tensor
from vsa.common.video import read_video
from vsa.common.webrtc import free_port
from vsa.tools.cli import main as vsa_main

pytestmark = pytest.mark.slow
BIN = os.path.dirname(sys.executable)


def _run_pair(model, clip, tmp_path, recv_args, send_args, env=None, timeout=120):
    port = free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), **(env or {})}
    recv = subprocess.Popen([f"{BIN}/vrecv", "--listen", f"127.0.0.1:{port}", *recv_args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        send = subprocess.run([f"{BIN}/vsend", "--model", str(model), str(clip), "--connect", f"127.0.0.1:{port}",
                               "--bind", "127.0.0.1", *send_args], env=env, capture_output=True, text=True,
                              timeout=timeout)
        recv_out, _ = recv.communicate(timeout=30)
    finally:
        recv.kill()
    return recv.returncode, recv_out, send


def test_two_processes_on_loopback_match_vsa_decode(trained_bundle, clip_path, tmp_path):
    model, _ = trained_bundle
    out = tmp_path / "out.mp4"
    code, recv_out, send = _run_pair(model, clip_path, tmp_path, ["--output", str(out), "--fixed-iterations"],
                                     ["--limit", "60"])
    assert send.returncode == 0, send.stderr
    assert code == 0, recv_out
    assert "model sent" in send.stdout and "60 frames" in recv_out
    live, info, _ = read_video(str(out))
    assert len(live) == 60 and info.fps == pytest.approx(30.0, rel=0.01)
    ref, _, _ = read_video(clip_path, size=(128, 192), limit=60)
    assert vsa_main(["encode", clip_path, "--model", str(model), "-o", str(tmp_path / "c.vsa"), "--stride", "2",
                     "--limit", "60"]) == 0
    assert vsa_main(["decode", str(tmp_path / "c.vsa"), "-o", str(tmp_path / "offline.mp4"), "--device", "cpu"]) == 0
    offline, _, _ = read_video(str(tmp_path / "offline.mp4"))
    score = lambda v: float(mean_psnr(psnr(to_tensor(v), to_tensor(ref))))  # noqa: E731
    assert abs(score(live) - score(offline)) < 0.5, (score(live), score(offline))


def test_vsend_without_a_receiver_fails_clearly(trained_bundle, clip_path):
    model, _ = trained_bundle
    result = subprocess.run([f"{BIN}/vsend", "--model", model, clip_path, "--connect", f"127.0.0.1:{free_port()}",
                             "--timeout", "1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no receiver at" in result.stderr and "Traceback" not in result.stderr


def test_vrecv_display_without_a_screen_fails_clearly():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([f"{BIN}/vrecv", "--display"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2 and "needs a screen" in result.stderr


def _screenshot(display: str, size: tuple[int, int]) -> np.ndarray:
    """Grab the virtual screen through FFmpeg's x11grab, via PyAV."""
    # draw_mouse=0: x11grab draws the pointer by default, a non-black 16x16 patch on an empty screen.
    with av.open(display, format="x11grab", options={"video_size": f"{size[1]}x{size[0]}", "draw_mouse": "0"}) as grab:
        frame = next(grab.decode(video=0))
        return frame.to_ndarray(format="rgb24")


@contextlib.contextmanager
def _virtual_screen():
    """A 320x240 Xvfb screen for the test's windows; yields its DISPLAY name, and stops it afterwards.

    Xvfb picks a free display itself and says which once it accepts clients (``-displayfd``): a number
    drawn at random collided with the socket a killed Xvfb had left behind, and the test then grabbed a
    display nobody served. It is stopped with SIGTERM, so it removes its lock and socket.
    """
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "320x240x24", "-nolisten", "tcp"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        with selectors.DefaultSelector() as ready:
            ready.register(xvfb.stdout, selectors.EVENT_READ)
            if not ready.select(timeout=10):
                pytest.fail("Xvfb did not start within 10 s")
        yield f":{xvfb.stdout.readline().strip()}"
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(5)
        except subprocess.TimeoutExpired:
            xvfb.kill()


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (apt install xvfb; .ci/run does)")
def test_display_window_shows_the_video(trained_bundle, clip_path, tmp_path):
    model, _ = trained_bundle
    with _virtual_screen() as display:
        port = free_port()
        env = {**os.environ, "DISPLAY": display, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        recv = subprocess.Popen([f"{BIN}/vrecv", "--listen", f"127.0.0.1:{port}", "--display"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        send = subprocess.Popen([f"{BIN}/vsend", "--model", model, clip_path, "--connect", f"127.0.0.1:{port}",
                                 "--loop", "--limit", "200"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            # Poll (bounded) rather than sleep a fixed time: start-up is slower on a loaded CI machine.
            deadline = time.monotonic() + 30
            while True:
                time.sleep(1.0)
                shot = _screenshot(display, (240, 320))
                showing = (shot.max(axis=2) > 0).sum() > 128 * 192 // 2
                if showing or time.monotonic() > deadline:
                    break
            time.sleep(1.0)  # let a few frames play, so the window holds video rather than its first paint
            # Several shots: one can catch a frame half-drawn (SDL here has no vsync) or the blend across the
            # loop's jump back to the clip's start.
            shots = []
            for _ in range(4):
                shots.append(_screenshot(display, (240, 320)))
                time.sleep(0.25)
        finally:
            send.kill()
            recv.kill()
            recv.communicate(timeout=10)
    ref, _, _ = read_video(clip_path, size=(128, 192), limit=109)
    scores = []
    for shot in shots:
        # With no window manager SDL centres the window: find it as the part of the screen that is not black.
        rows = np.flatnonzero(shot.max(axis=(1, 2)) > 0)
        cols = np.flatnonzero(shot.max(axis=(0, 2)) > 0)
        assert rows.size and cols.size, "the screen is blank: no window"
        window = shot[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(float)
        assert window.shape[:2] == (128, 192), window.shape
        # Not a flat fill, and a frame of the clip rather than noise (compared below the overlay).
        assert window.std() > 20, window.std()
        best = min(np.abs(window[30:] - f[30:].astype(float)).mean() for f in ref)
        noise = np.abs(window[30:] - np.random.default_rng(0).uniform(0, 255, window[30:].shape)).mean()
        scores.append((best, noise))
    assert any(best < 25 and best < noise / 3 for best, noise in scores), scores


def test_interrupting_vsend_ends_both_cleanly_and_keeps_what_was_recorded(trained_bundle, tmp_path):
    import signal

    model, _ = trained_bundle
    port = free_port()
    out = tmp_path / "out.mp4"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def default_sigint() -> None:  # a background job of a non-interactive shell starts with SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    recv = subprocess.Popen([f"{BIN}/vrecv", "--listen", f"127.0.0.1:{port}", "--output", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    send = subprocess.Popen([f"{BIN}/vsend", "--model", str(model), "lavfi:testsrc2=size=192x128:rate=30",
                             "--connect", f"127.0.0.1:{port}", "--bind", "127.0.0.1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 0):
            time.sleep(0.2)  # the receiver opens its mp4 once the model is in
        time.sleep(2.0)
        send.send_signal(signal.SIGINT)
        _, send_err = send.communicate(timeout=30)
        recv_out, _ = recv.communicate(timeout=30)
    finally:
        send.kill()
        recv.kill()
    assert send.returncode == 130 and "interrupted" in send_err and "Traceback" not in send_err, send_err
    # The receiver says the sender went away, and the mp4 holds what was played.
    assert recv.returncode == 1 and "sender went away" in recv_out, recv_out
    frames, _, _ = read_video(str(out))
    assert len(frames) >= 30


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (apt install xvfb; .ci/run does)")
def test_a_window_prepared_before_the_stream_shows_frames_at_its_scaled_size(tmp_path, monkeypatch):
    import torch

    from vsa.receiver.display import DisplayThread

    with _virtual_screen() as display:
        monkeypatch.setenv("DISPLAY", display)
        window = DisplayThread(scale=2.0)
        try:
            window.prepare(32, 48)  # what vrecv does once the model is in, before any frame
            # Opened black at twice the frame's size (no window manager: centred on the screen); a white
            # frame then shows as the screen's only bright pixels.
            window.show(torch.ones(3, 32, 48), {})
            deadline = time.monotonic() + 10
            while True:
                shot = _screenshot(display, (240, 320))
                rows = np.flatnonzero(shot.max(axis=(1, 2)) > 200)
                cols = np.flatnonzero(shot.max(axis=(0, 2)) > 200)
                if (rows.size and cols.size) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            window.close()
    assert rows.size and cols.size, "the frame never showed"
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (64, 96)
    assert window.error is None
