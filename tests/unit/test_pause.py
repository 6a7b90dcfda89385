"""pause: refusals push the next try out along the poll backoff, never past 30 s; nothing is called
while paused; a new pause starts from the first delay."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from invoicesync.pause import MAX_RETRY_SECONDS, NOT_PAUSED, Pause, refused


def test_refusals_back_off_from_the_first_delay_and_are_capped() -> None:
    pause, now, delays = NOT_PAUSED, 1000.0, []
    for _ in range(8):
        pause = refused(pause, "401 twice", now, first_seconds=5, max_seconds=300)
        delays.append(pause.until - now)
    assert delays == [5, 10, 20, 30, 30, 30, 30, 30]
    assert pause.attempts == 8 and pause.reason == "401 twice"


def test_nothing_is_called_until_the_next_try() -> None:
    pause = refused(NOT_PAUSED, "seller refused", 100.0, first_seconds=5, max_seconds=300)
    assert pause.blocks(100.0) and pause.blocks(104.9)
    assert not pause.blocks(105.0)
    assert not NOT_PAUSED.blocks(0.0)


@given(
    attempts=st.integers(min_value=0, max_value=10_000),
    first=st.floats(min_value=0.01, max_value=3600),
    cap=st.floats(min_value=0.01, max_value=86_400),
    now=st.floats(min_value=0, max_value=4e9),
)
def test_the_next_try_is_never_more_than_thirty_seconds_away(
    attempts: int, first: float, cap: float, now: float
) -> None:
    pause = refused(Pause("x", 0.0, attempts), "x", now, first_seconds=first, max_seconds=cap)
    assert now < pause.until <= now + MAX_RETRY_SECONDS
    assert pause.attempts == attempts + 1
