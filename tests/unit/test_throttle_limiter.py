"""The refused-authentication throttle on its own, with a clock the test moves: the allowance,
the coalesced activity entries, and the bound on what it remembers."""

from __future__ import annotations

from appgw.control.throttle import (
    BURST,
    REFILL_SECONDS,
    WINDOW_SECONDS,
    WRITE_INTERVAL,
    AuthThrottle,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guess(throttle: AuthThrottle, address: str, token: str) -> bool:
    """Present a wrong token as the service does; True if it was checked (not limited)."""
    limited = throttle.retry_after(address) is not None
    throttle.refused(address, token, "api", limited=limited)
    return not limited


def test_an_address_is_limited_after_the_burst_and_refilled_over_time() -> None:
    clock = Clock()
    throttle = AuthThrottle(clock=clock)
    checked = [guess(throttle, "10.0.0.1", f"t{n}") for n in range(BURST + 5)]
    assert checked == [True] * BURST + [False] * 5
    assert throttle.retry_after("10.0.0.1") == int(REFILL_SECONDS)
    assert throttle.retry_after("10.0.0.2") is None  # others unaffected
    clock.now += REFILL_SECONDS / 2
    assert throttle.retry_after("10.0.0.1") == int(REFILL_SECONDS / 2)
    clock.now += REFILL_SECONDS / 2
    assert guess(throttle, "10.0.0.1", "another") and not guess(throttle, "10.0.0.1", "more")


def test_the_same_wrong_token_again_is_no_new_guess() -> None:
    throttle = AuthThrottle(clock=Clock())
    assert all(guess(throttle, "10.0.0.1", "stale") for _ in range(10 * BURST))


def test_a_refused_token_is_remembered_per_address() -> None:
    """What the service answers 401 without the store: this address was refused this token."""
    throttle = AuthThrottle(clock=Clock())
    guess(throttle, "10.0.0.1", "stale")
    assert throttle.was_refused("10.0.0.1", "stale")
    assert not throttle.was_refused("10.0.0.1", "another")
    assert not throttle.was_refused("10.0.0.2", "stale")


def test_an_ipv6_host_counts_by_its_64() -> None:
    throttle = AuthThrottle(clock=Clock())
    for n in range(BURST):
        guess(throttle, f"2001:db8:1:2::{n + 1:x}", f"t{n}")
    assert throttle.retry_after("2001:db8:1:2:ffff::1") is not None
    assert throttle.retry_after("2001:db8:1:3::1") is None
    assert throttle.retry_after("::ffff:10.0.0.9") is None


def test_refusals_are_one_entry_per_address_and_minute() -> None:
    clock = Clock()
    throttle = AuthThrottle(clock=clock, wall_clock=clock)
    first = throttle.refused("10.0.0.1", "a", "api", limited=False)
    assert [(e.new, e.tally.refused) for e in first] == [(True, 1)]
    event_id = first[0].tally.event_id
    # Within the write interval nothing is written; the counts wait for a read.
    assert throttle.refused("10.0.0.1", "b", "portal", limited=False) == []
    pending = throttle.pending()
    assert [(e.new, e.tally.refused, e.tally.event_id) for e in pending] == [(False, 2, event_id)]
    assert pending[0].tally.detail()["via"] == ["api", "portal"]
    assert throttle.pending() == []  # nothing new since
    clock.now += WRITE_INTERVAL
    again = throttle.refused("10.0.0.1", "c", "api", limited=False)
    assert [(e.new, e.tally.refused) for e in again] == [(False, 3)]
    # A new minute: the last count of the old entry, and a new entry.
    throttle.refused("10.0.0.1", "d", "api", limited=False)
    clock.now += WINDOW_SECONDS
    rolled = throttle.refused("10.0.0.1", "e", "api", limited=False)
    assert [(e.new, e.tally.refused, e.tally.event_id == event_id) for e in rolled] == [
        (False, 4, True),
        (True, 1, False),
    ]


def test_what_it_remembers_is_bounded_and_nothing_counted_is_lost() -> None:
    throttle = AuthThrottle(clock=Clock(), max_addresses=1000)
    written = 0
    for n in range(50_000):
        address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        entries = throttle.refused(address, "t", "api", limited=False)
        entries += throttle.refused(address, "u", "api", limited=False)
        written += sum(e.tally.refused for e in entries if e.new)
        assert len(throttle) <= 1000
    # Each address's entry was written when first refused (its second refusal on eviction or
    # by pending): every one of them is in the log.
    assert written == 50_000
    assert len(throttle.pending()) == 1000
