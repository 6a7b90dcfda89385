"""pause (core): an outbox's uploads paused for a reason a person must fix (credentials, seller refused),
and when to try again: values in, values out.

A paused outbox makes no call at all until `until`; each refusal pushes the next try out (the poll
backoff: first_seconds, doubling) but never past `MAX_RETRY_SECONDS`, so fixed credentials are noticed
within half a minute without a restart. Any accepted call ends the pause.
"""

from __future__ import annotations

from dataclasses import dataclass

from invoicesync.lifecycle import poll_delay

MAX_RETRY_SECONDS = 30.0  # a paused outbox tries again at least this often


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str | None = None  # None: not paused
    until: float = 0.0  # wall time of the next try
    attempts: int = 0  # refusals since the pause began: the delay grows with them

    def blocks(self, now: float) -> bool:
        """True while no call may be made."""
        return self.reason is not None and now < self.until


NOT_PAUSED = Pause()


def refused(pause: Pause, reason: str, now: float, *, first_seconds: float, max_seconds: float) -> Pause:
    """The pause after one more refusal for `reason` at `now`."""
    delay = min(
        MAX_RETRY_SECONDS, poll_delay(pause.attempts, first_seconds=first_seconds, max_seconds=max_seconds)
    )
    return Pause(reason=reason, until=now + delay, attempts=pause.attempts + 1)
