"""Deadline: one lazily re-armed timer per connection that still fires on time."""

from __future__ import annotations

import asyncio

import uvloop

from appgw.dataplane.deadline import Deadline


def test_fires_once_at_the_latest_deadline_set() -> None:
    async def scenario() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []
        start = loop.time()
        deadline = Deadline(loop)
        deadline.set(0.05, lambda: fired.append(("first", loop.time() - start)))
        await asyncio.sleep(0.02)
        # moved later: the timer armed for 0.05 s must not fire the call then
        deadline.set(0.1, lambda: fired.append(("second", loop.time() - start)))
        await asyncio.sleep(0.25)
        return fired

    fired = uvloop.run(scenario())
    assert [name for name, _ in fired] == ["second"]
    assert 0.115 <= fired[0][1] < 0.25


def test_moved_earlier_fires_early() -> None:
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        start = loop.time()
        deadline = Deadline(loop)
        deadline.set(5, lambda: done.set_result(-1.0))
        deadline.set(0.03, lambda: done.set_result(loop.time() - start))
        return await asyncio.wait_for(done, 1)

    assert 0.025 <= uvloop.run(scenario()) < 0.5


def test_clear_and_close() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []

        def mine() -> None:
            fired.append("mine")

        deadline = Deadline(loop)
        deadline.set(0.02, mine)
        deadline.clear(lambda: None)  # not the pending call: nothing changes
        other = Deadline(loop)
        other.set(0.02, lambda: fired.append("cleared"))
        other.clear()
        closed = Deadline(loop)
        closed.set(0.02, lambda: fired.append("closed"))
        closed.close()
        await asyncio.sleep(0.1)
        return fired

    assert uvloop.run(scenario()) == ["mine"]
