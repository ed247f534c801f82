import pytest

from vsa.protocol.messages import Frame
from vsa.receiver.jitter import MAX_GAP, JitterBuffer, Lost
from vsa.receiver.playout import Playout


def frame(seq):
    return Frame(seq=seq, pts=2 * seq, keyframe=False, payload=b"p")


def seqs(items):
    return [("lost", x.seq) if isinstance(x, Lost) else x.seq for x in items]


def test_in_order_frames_pass_at_once():
    jb = JitterBuffer(wait=0.066)
    for s in range(3):
        assert not jb.push(frame(s), now=s * 0.066)
        assert seqs(jb.pop(now=s * 0.066)) == [s]


def test_reordered_frames_are_put_back_in_order():
    jb = JitterBuffer(wait=0.066)
    assert jb.push(frame(1), now=0.0)  # seq 0 is missing
    assert jb.pop(now=0.01) == []
    jb.push(frame(0), now=0.02)
    assert seqs(jb.pop(now=0.02)) == [0, 1]


def test_a_missing_frame_is_declared_lost_after_the_wait_and_a_late_copy_is_dropped():
    jb = JitterBuffer(wait=0.066)
    jb.push(frame(0), 0.0)
    jb.pop(0.0)
    jb.push(frame(2), 0.1)
    assert jb.pop(0.15) == [] and abs(jb.deadline() - 0.166) < 1e-9
    assert seqs(jb.pop(0.17)) == [("lost", 1), 2]
    assert not jb.push(frame(1), 0.2) and jb.late == 1 and jb.lost == 1


def test_frames_missing_at_the_end_are_lost_after_the_bye():
    jb = JitterBuffer(wait=0.05)
    jb.push(frame(0), 0.0)
    jb.pop(0.0)
    jb.end(total=3, now=1.0)
    assert not jb.done and jb.pop(1.01) == []
    assert seqs(jb.pop(1.06)) == [("lost", 1), ("lost", 2)] and jb.done


def test_a_seq_far_ahead_is_refused_and_capacity_forces_progress():
    jb = JitterBuffer(wait=10.0, capacity=4)
    jb.push(frame(MAX_GAP + 5), 0.0)
    assert jb.refused == 1 and jb.deadline() is None
    for s in range(1, 7):
        jb.push(frame(s), 0.0)
    out = seqs(jb.pop(0.0))
    assert out[0] == ("lost", 0) and out[1:] == [1, 2, 3, 4, 5, 6]


def test_playout_delay_covers_the_interpolation_wait_and_keeps_frames_evenly_spaced():
    fps = 30.0
    play = Playout(fps, margin=1 / fps)
    dues = []
    # Stride 2: frame 2k+1 is only ready when frame 2k+2 arrives (plus 10 ms to reconstruct).
    for k in range(30):
        for i in (2 * k, 2 * k + 1):
            capture = i / fps
            arrival = (2 * k + (0 if i % 2 == 0 else 2)) / fps + 0.005
            play.arrived(capture, arrival) if i % 2 == 0 else None
            dues.append(play.due(capture, arrival + 0.010))
    steps = [b - a for a, b in zip(dues[20:], dues[21:])]
    assert all(abs(s - 1 / fps) < 1e-6 for s in steps)
    # The delay is the worst lag (one frame + 10 ms) plus one frame of margin.
    assert abs(play.delay - (1 / fps + 0.010 + 1 / fps)) < 1e-6


def test_a_keyframe_behind_a_hole_ends_the_wait_for_inter_coded_streams():
    for skip, expected in ((True, [("lost", 1), 2]), (False, [])):
        jb = JitterBuffer(wait=1.0, skip_to_keyframe=skip)
        jb.push(frame(0), 0.0)
        jb.pop(0.0)
        jb.push(Frame(seq=2, pts=4, keyframe=True, payload=b"k"), 0.1)
        assert seqs(jb.pop(0.1)) == expected


def test_playout_delay_follows_the_95th_percentile_lag_not_one_outlier():
    fps = 30.0
    for quantile, expected in ((0.95, 0.040), (1.0, 0.200)):
        play = Playout(fps, margin=0.0, quantile=quantile)
        play.arrived(0.0, 0.0)
        for i in range(60):
            lag = 0.200 if i == 30 else 0.040
            play.due(i / fps, i / fps + lag)
        assert abs(play.delay - expected) < 1e-9
    with pytest.raises(ValueError, match="quantile"):
        Playout(fps, quantile=0.0)


def test_playout_delay_does_not_wait_for_the_encoders_periodic_large_frames():
    """libvpx refreshes its golden frame every 10 frames sent, at 5-10 times an inter frame's size: on a 60 kbps
    link that frame, and the one interpolated toward it, come 120 ms later than the rest. At the 90th percentile
    the delay waited for them, and every frame was shown 120 ms later (median 150-250 ms on the lossy link);
    now those two frames in twenty are shown late, as soon as they are ready."""
    fps = 30.0
    play = Playout(fps, margin=0.0)
    play.arrived(0.0, 0.0)
    late = shown = 0
    for k in range(60):  # 4 s at stride 2: sent frame 2k arrives 40 ms after capture, 160 ms when it is golden
        for i in (2 * k, 2 * k + 1):
            big = (k + (i % 2)) % 10 == 5  # the golden frame, and the frame interpolated toward it
            sent_lag = 0.160 if big else 0.040
            ready = i / fps + (sent_lag if i % 2 == 0 else 1 / fps + sent_lag)
            due = play.due(i / fps, ready)
            if k >= 30:
                shown += 1
                late += due < ready - 1e-9
    assert abs(play.delay - (1 / fps + 0.040)) < 1e-6  # the interpolated frames' usual wait, not the golden one
    assert late / shown == 0.1  # the golden frames and the frames interpolated toward them
    waiting = Playout(fps, margin=0.0, quantile=0.9)  # `vrecv --on-time 90`: smoother, later
    waiting.arrived(0.0, 0.0)
    for k in range(60):
        for i in (2 * k, 2 * k + 1):
            big = (k + (i % 2)) % 10 == 5
            waiting.due(i / fps, i / fps + (0.160 if big else 0.040) + (i % 2) / fps)
    assert waiting.delay > 0.150


def test_playout_gives_back_a_large_excess_delay_within_seconds_and_a_small_one_slowly():
    fps = 30.0
    play = Playout(fps, margin=0.0)
    play.arrived(0.0, 0.0)
    t = 0.0
    for i in range(60):  # two seconds through a congested link: the lag grows to 2 s
        t = i / fps
        play.due(t, t + 2.0 * i / 60)
    assert play.delay > 1.5  # the lags of the last 2 s: up to 2 s
    start = t
    for i in range(60, 60 + 8 * 30):  # the link drained: every frame ready 50 ms after capture
        t = i / fps
        play.due(t, t + 0.050)
    # Within 8 s: the 2-s lags leave the 3-s window, then the excess falls by e every second (10 ms a second
    # would have left 1.8 s).
    assert play.delay < 0.2
    assert t - start < 8.1
    # Just above what the lags need, it shrinks at the slow rate: a jitter spike may come back.
    small = Playout(fps, margin=0.0)
    small.arrived(0.0, 0.0)
    small.due(0.0, 0.060)
    for i in range(1, 31):
        small.due(i / fps, i / fps + 0.040)
    assert 0.045 < small.delay < 0.060


def test_playout_forgets_a_lag_once_the_window_holds_only_frames_late_for_a_loss():
    fps = 30.0
    play = Playout(fps, margin=0.0)
    play.arrived(0.0, 0.0)
    play.due(0.0, 4.0)  # one frame 4 s late: the delay goes to its 2-s ceiling
    assert play.delay == 2.0
    for i in range(1, 8 * 30):  # then only frames late because data was lost, each 60 ms after capture
        t = 4.0 + i / fps
        play.due(t, t + 0.060, adapt=False)
    assert play.delay < 0.2  # the 4-s lag left the window; it no longer holds the delay up


def test_frames_late_for_other_reasons_never_set_the_delay_even_in_an_empty_window():
    """After seconds of a congested link's late frames (none adapting), the first of them must not set the
    delay: it held 2 s for the next window."""
    fps = 30.0
    play = Playout(fps, margin=0.0)
    play.arrived(0.0, 0.0)
    for i in range(5 * 30):
        t = i / fps
        play.due(t, t + 1.5, adapt=False)
    assert play.delay == 0.0


def test_the_buffer_names_the_frames_it_misses_for_a_retransmission_request():
    jb = JitterBuffer(wait=0.3)
    assert jb.missing() == []
    jb.push(frame(0), now=0.0)
    jb.pop(now=0.0)
    jb.push(frame(3), now=0.1)
    jb.push(frame(5), now=0.1)
    assert jb.missing() == [1, 2, 4]
    assert jb.missing(limit=2) == [1, 2]
    jb.push(frame(1), now=0.15)
    jb.pop(now=0.15)
    assert jb.missing() == [2, 4]
    jb.end(8, now=0.2)  # the bye: 6 and 7 were sent too
    assert jb.missing() == [2, 4, 6, 7]


def test_the_buffer_knows_a_frame_it_has_seen_so_a_copy_is_not_read_as_a_delay():
    jb = JitterBuffer(wait=0.1)
    jb.push(frame(0), now=0.0)
    jb.pop(now=0.0)
    jb.push(frame(2), now=0.05)  # 1 missing
    assert jb.seen(0) and jb.seen(2) and not jb.seen(1) and not jb.seen(3)
    assert seqs(jb.pop(now=0.2)) == [("lost", 1), 2]
    assert jb.seen(1)  # given up on: a copy sent again now is late by the wait, not by a queue
