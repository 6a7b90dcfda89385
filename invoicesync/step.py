"""step (core): what one outbox's loop step does about delivery: the journal's view + `now` -> actions.

The shell (`delivery`) reads the view from the journal, asks, and carries the actions out in order, each
safe to repeat after a crash:

- `plan_sending(view, now)`: `NewBatch` (journal a batch of ready files, `plan.plan_batches`) and
  `Duplicate` (a file whose bytes were already delivered to its order at this destination goes to sent/,
  its receipt naming the earlier delivery; judged only when the file's turn to be sent comes, so two
  identical drops waiting on each other cannot both go);
- `due_steps(batches, pause, now)`: one step of each open batch whose time has come: `Upload`,
  `LookForLost` (an upload with no answer), `Poll`; none at all while the outbox is paused;
- `wake_at(...)`: the earliest wall time an open batch wants attention (not before a pause ends);
- `next_wake(...)`: how long the loop may sleep, from everything it waits for.

A file found changed after its check is checked again at most `MAX_CHANGED_CHECKS` times (`checked_enough`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from invoicesync.model import BatchState
from invoicesync.pause import Pause
from invoicesync.plan import PlanItem, PlannedBatch, plan_batches

MAX_CHANGED_CHECKS = 5  # a file found changed after its check is checked again this often, then fails


@dataclass(frozen=True, slots=True)
class Earlier:
    """The delivery a duplicate repeats, as its receipt names it."""

    file: str
    import_id: str | None
    delivered_at: str | None
    destination: str


@dataclass(frozen=True, slots=True)
class OpenBatch:
    batch_id: str
    state: BatchState
    next_attempt_at: float  # wall time


@dataclass(frozen=True, slots=True)
class SendingView:
    ready: Sequence[PlanItem]  # in claim order, oldest first
    delivered: Mapping[str, Earlier]  # ready item_id -> the earlier delivery of its bytes to its order
    orders_busy: Iterable[str]  # orders with a file in flight or still being checked


@dataclass(frozen=True, slots=True)
class Batching:
    max_files: int
    max_bytes: int
    max_wait_seconds: float
    one_per_request: bool = False  # the marketplace takes one file per request (Kaufland)


@dataclass(frozen=True, slots=True)
class NewBatch:
    planned: PlannedBatch


@dataclass(frozen=True, slots=True)
class Duplicate:
    item_id: str
    earlier: Earlier


@dataclass(frozen=True, slots=True)
class Upload:
    batch_id: str


@dataclass(frozen=True, slots=True)
class LookForLost:
    batch_id: str


@dataclass(frozen=True, slots=True)
class Poll:
    batch_id: str


SendingAction = NewBatch | Duplicate
BatchStep = Upload | LookForLost | Poll


@dataclass(frozen=True, slots=True)
class Sending:
    actions: tuple[SendingAction, ...]
    deadline: float | None  # wall time a waiting bulk batch must leave


def plan_sending(
    view: SendingView, now: float, *, batching: Batching, flush: bool, more_coming: bool
) -> Sending:
    """New batches of the ready files, without the files whose bytes their order already has."""
    plan = plan_batches(
        view.ready,
        orders_in_flight=set(view.orders_busy),
        max_files=batching.max_files,
        max_bytes=batching.max_bytes,
        max_wait_seconds=batching.max_wait_seconds,
        now=now,
        flush=flush,
        more_coming=more_coming,
        one_per_request=batching.one_per_request,
    )
    actions: list[SendingAction] = []
    for planned in plan.batches:
        duplicates = [item for item in planned.items if item.item_id in view.delivered]
        actions.extend(Duplicate(item.item_id, view.delivered[item.item_id]) for item in duplicates)
        kept = tuple(item for item in planned.items if item not in duplicates)
        if kept:
            actions.append(NewBatch(PlannedBatch(planned.endpoint, kept, order_id=planned.order_id)))
    return Sending(tuple(actions), plan.next_deadline)


def due_steps(
    batches: Sequence[OpenBatch], pause: Pause, now: float, *, polls_only: bool = False
) -> list[BatchStep]:
    """The step each due batch takes now, oldest batch first. A paused outbox makes no call at all until
    `pause.until`; `polls_only` (the outbox's folders are unusable) polls imports already submitted."""
    if pause.blocks(now):
        return []
    steps: list[BatchStep] = []
    for batch in batches:
        if batch.next_attempt_at > now or (polls_only and batch.state is not BatchState.SUBMITTED):
            continue
        if batch.state is BatchState.PLANNED:
            steps.append(Upload(batch.batch_id))
        elif batch.state is BatchState.UPLOADING:
            steps.append(LookForLost(batch.batch_id))
        elif batch.state is BatchState.SUBMITTED:
            steps.append(Poll(batch.batch_id))
    return steps


def wake_at(batches: Sequence[OpenBatch], pause: Pause) -> float | None:
    """The earliest wall time an open batch is due (not before a pause ends). A waiting bulk batch's
    deadline is a due of its own (`Sending.deadline`, waited for beside this one: `next_wake`)."""
    due = [max(batch.next_attempt_at, pause.until) for batch in batches if batch.state is not BatchState.DONE]
    return min(due, default=None)


def next_wake(
    *,
    monotonic: float,
    wall: float,
    monotonic_dues: Iterable[float | None],
    wall_dues: Iterable[float | None],
) -> float:
    """Seconds the loop may sleep: until the first of what it waits for (each on its own clock), never
    negative."""
    due = [at - monotonic for at in monotonic_dues if at is not None]
    due += [at - wall for at in wall_dues if at is not None]
    return max(0.0, min(due, default=0.0))


def checked_enough(times_changed: int) -> bool:
    """A file found changed after its check this many times is not checked again: it fails (a program is
    still writing it)."""
    return times_changed > MAX_CHANGED_CHECKS
