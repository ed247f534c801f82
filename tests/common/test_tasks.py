"""Background tasks: a failure is logged and handed to its owner, never dropped."""

import asyncio
import logging

from vsa.common.tasks import background


async def test_a_failing_task_is_logged_and_reported_to_its_owner(caplog):
    failures, keep = [], set()

    async def boom():
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="vsa.tasks"):
        task = background(boom(), "the boom task", keep, lambda name, exc: failures.append((name, str(exc))))
        await asyncio.wait({task}, timeout=5)
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert failures == [("the boom task", "boom")]
    assert "the boom task failed: boom" in caplog.text
    assert keep == set()


async def test_tasks_that_finish_or_are_cancelled_report_nothing():
    failures, keep = [], set()
    ok = background(asyncio.sleep(0), "fine", keep, lambda *a: failures.append(a))
    stuck = background(asyncio.sleep(60), "cancelled", keep, lambda *a: failures.append(a))
    assert keep == {ok, stuck}
    stuck.cancel()
    await asyncio.wait({ok, stuck}, timeout=5)
    await asyncio.sleep(0)
    assert failures == [] and keep == set()
