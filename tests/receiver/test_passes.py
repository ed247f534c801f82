"""The live receiver's choice of reprojection passes, driven with made-up times (no clock, no threads)."""

from vsa.receiver.passes import STREAK, PassController

BUDGET = 2 / 30  # stride 2 at 30 fps


def _judge(control: PassController, times: list[float], passes: int, queued: int = 0,
           one_pass: float = 0.005) -> list[int]:
    decided = []
    for elapsed in times:
        passes = control.judge(elapsed, BUDGET, passes, queued, one_pass)
        decided.append(passes)
    return decided


def test_one_slow_frame_costs_no_pass_but_a_slow_average_does():
    control = PassController(most=3)
    assert _judge(control, [0.02] * 10 + [0.09] + [0.02] * 5, passes=3) == [3] * 16
    control = PassController(most=3)
    decided = _judge(control, [0.08] * 10, passes=3)
    assert decided[0] == 2  # a first frame this slow: the average is that frame
    assert decided[-1] == 1 and min(decided) == 1  # never below one pass


def test_a_backlog_of_frames_drops_a_pass_whatever_the_average():
    control = PassController(most=2)
    assert control.judge(0.001, BUDGET, 2, queued=3, one_pass=0.001) == 1
    assert control.judge(0.001, BUDGET, 1, queued=3, one_pass=0.001) == 1


def test_a_pass_comes_back_only_after_a_streak_of_frames_with_room_for_it():
    control = PassController(most=2)
    decided = _judge(control, [0.01] * STREAK, passes=1)
    assert decided[:-1] == [1] * (STREAK - 1) and decided[-1] == 2
    assert _judge(control, [0.01] * (3 * STREAK), passes=2) == [2] * (3 * STREAK)  # never above where it began
    # No room for one more pass (its measured cost would overrun 80% of the budget): no streak builds.
    control = PassController(most=2)
    assert _judge(control, [0.01] * (2 * STREAK), passes=1, one_pass=0.05) == [1] * (2 * STREAK)
    # A frame slow enough to leave no room (not enough to drop a pass) starts the streak again.
    control = PassController(most=2)
    times = [0.01] * (STREAK - 1) + [0.15] + [0.01] * (STREAK - 1)
    assert _judge(control, times, passes=1) == [1] * len(times)


def test_the_module_example_runs():
    import doctest

    from vsa.receiver import passes

    result = doctest.testmod(passes)
    assert result.attempted >= 3 and result.failed == 0
