"""inflight (shell): marketplace calls running beside the loop: up to `limit` at once on a thread pool
(one Octopia bulk upload, many Kaufland single-file ones), each result picked up by the loop thread, which
alone journals. Each finished call wakes the loop (`on_done`). A bundle on a seller's uplink can take
minutes to send; meanwhile the loop goes on claiming, journaling verdicts and finishing files.

Only the network runs here: what a call guards is journaled before it starts, and its answer after it ends,
both by `delivery` on the loop thread. When the loop stops (a stop, a reload), the calls running are waited
for and their answers journaled (`settle`): a reload never leaves an upload running that the next loop
could send again. A crash leaves the batch `planned` or `uploading`: prepared again, or looked up before
anything is sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal

from invoicesync.journal import BatchRow
from invoicesync.model import Batch

Phase = Literal["prepare", "submit"]


@dataclass(frozen=True, slots=True)
class Call:
    phase: Phase
    row: BatchRow
    batch: Batch
    future: Future[Any]

    def result(self) -> Any:
        """The call's return value, or the exception it raised (a cancelled call: CancelledError)."""
        try:
            return self.future.result(timeout=0)
        except Exception as exc:
            return exc


class InFlight:
    def __init__(self, limit: int, on_done: Callable[[], None]) -> None:
        self.limit = limit
        self._on_done = on_done
        self._calls: dict[str, Call] = {}  # by batch_id
        self._pool: ThreadPoolExecutor | None = None

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._calls

    @property
    def room(self) -> int:
        return max(0, self.limit - len(self._calls))

    def start(self, phase: Phase, row: BatchRow, batch: Batch, call: Callable[[Batch], Any]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="upload")
        future = self._pool.submit(call, batch)
        self._calls[row.batch_id] = Call(phase, row, batch, future)
        future.add_done_callback(lambda _: self._on_done())

    def done(self) -> list[Call]:
        """The calls that have ended, taken off the list, in the order they were started."""
        finished = [call for call in self._calls.values() if call.future.done()]
        for call in finished:
            del self._calls[call.row.batch_id]
        return finished

    def settle(self) -> None:
        """The loop stops: calls not begun are withdrawn, those running are waited for (each within its
        deadline, cut short by a stop), so their answers can be journaled before the journal closes."""
        for call in self._calls.values():
            call.future.cancel()
        wait([call.future for call in self._calls.values()])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._calls.clear()
