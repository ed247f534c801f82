"""Faults injected into `vrecv` and `vsend` as two processes on loopback: a peer killed with SIGKILL mid-stream.

Every wait is bounded and keyed to what the processes log, not to fixed sleeps.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from vsa.common.video import read_video
from vsa.common.webrtc import free_port

pytestmark = pytest.mark.slow
BIN = os.path.dirname(sys.executable)


def _wait_for(log, pattern: str, timeout: float) -> re.Match:
    """Poll ``log`` (a path) until ``pattern`` appears; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{pattern!r} did not appear in {log.name} within {timeout:g} s:\n{log.read_text()[-2000:]}")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _pair(clip, tmp_path, recv_args=(), send_args=()):
    """vrecv and vsend (the bundled clip looped) streaming; returns (vrecv, vsend, their logs)."""
    port = free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    recv_log, send_log = tmp_path / "vrecv.log", tmp_path / "vsend.log"
    recv = subprocess.Popen([f"{BIN}/vrecv", "--listen", f"127.0.0.1:{port}", "--sessions", "1", *recv_args],
                            env=env, stdout=recv_log.open("w"), stderr=subprocess.STDOUT)
    send = subprocess.Popen([f"{BIN}/vsend", clip, "--connect", f"127.0.0.1:{port}", "--bind", "127.0.0.1",
                             "--loop", "--timeout", "60", *send_args], env=env, stdout=send_log.open("w"), stderr=subprocess.STDOUT)
    # Streaming for real: the receiver's stats line counts sent frames received.
    _wait_for(recv_log, r"received [1-9]\d{1,}", 120)
    return recv, send, recv_log, send_log


def test_a_sender_killed_mid_stream_leaves_a_playable_video_and_the_receiver_exits(clip_path, tmp_path):
    out = tmp_path / "out.mp4"
    recv, send, recv_log, send_log = _pair(clip_path, tmp_path, ["--output", str(out), "--idle-timeout", "3"],
                                           ["--adapt"])
    _wait_for(send_log, r"trainer ready", 120)
    trainers = _children(send.pid)
    assert trainers, "vsend --adapt runs its trainer in a child process"
    try:
        send.kill()
        killed = time.monotonic()
        send.wait(10)
        code = recv.wait(60)  # its idle timeout is 3 s; the bound is for a loaded machine
        print(f"vrecv exited {time.monotonic() - killed:.1f} s after vsend was killed")
    finally:
        for p in (send, recv):
            p.kill()
    text = recv_log.read_text()
    # It exits 1 (a session ended with an error), saying which.
    assert code == 1 and "nothing received for 3 s" in text and "Traceback" not in text, text[-2000:]
    frames, _, _ = read_video(str(out))  # the mp4 was closed properly: it plays
    assert len(frames) >= 10
    # The trainer notices its sender is gone and exits too, rather than living on as an orphan.
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in trainers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in trainers)


def test_a_receiver_killed_mid_stream_ends_the_sender_with_one_line(clip_path, tmp_path):
    recv, send, _, send_log = _pair(clip_path, tmp_path)
    try:
        recv.kill()
        killed = time.monotonic()
        recv.wait(10)
        code = send.wait(120)  # ICE consent checks notice a dead peer within about 30 s
        print(f"vsend exited {time.monotonic() - killed:.1f} s after vrecv was killed")
    finally:
        for p in (send, recv):
            p.kill()
    text = send_log.read_text()
    assert code != 0 and "Traceback" not in text, text[-2000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("vsend: ") and "receiver" in last, last


def test_vsend_reconnect_goes_on_with_a_restarted_receiver_and_its_cached_model(trained_bundle, clip_path, tmp_path):
    model, _ = trained_bundle
    port = free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first_log, second_log, send_log = tmp_path / "vrecv1.log", tmp_path / "vrecv2.log", tmp_path / "vsend.log"
    out = tmp_path / "after.mkv"

    def vrecv(log, *args):
        return subprocess.Popen([f"{BIN}/vrecv", "--listen", f"127.0.0.1:{port}", "--sessions", "1", *args], env=env,
                                stdout=log.open("w"), stderr=subprocess.STDOUT)

    first = vrecv(first_log)
    send = subprocess.Popen([f"{BIN}/vsend", "--model", model, clip_path, "--connect", f"127.0.0.1:{port}", "--bind",
                             "127.0.0.1", "--loop", "--limit", "600", "--timeout", "60", "--reconnect"], env=env,
                            stdout=send_log.open("w"), stderr=subprocess.STDOUT)
    second = None
    try:
        _wait_for(first_log, r"received [1-9]\d{1,}", 120)
        first.kill()
        killed = time.monotonic()
        first.wait(10)
        second = vrecv(second_log, "--output", str(out))  # the same port and model cache, a new process
        _wait_for(second_log, r"ready for frames", 90)
        print(f"streaming again {time.monotonic() - killed:.1f} s after vrecv was killed")
        code = send.wait(120)
        second_code = second.wait(60)
    finally:
        for p in (send, first, second):
            if p is not None:
                p.kill()
    text, before, after = send_log.read_text(), first_log.read_text(), second_log.read_text()
    assert "requesting it" in before  # the first receiver had to be sent the model
    assert code == 0 and "reconnecting (--reconnect), attempt 1" in text and "Traceback" not in text, text[-2000:]
    # The restarted receiver found the model in its cache: nothing was sent twice.
    assert second_code == 0 and "model from cache" in after and "requesting it" not in after, after[-2000:]
    frames, _, _ = read_video(str(out))
    assert len(frames) >= 30
