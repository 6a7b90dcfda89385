"""The delivery decisions of a loop step (`step`), driven by a Hypothesis state machine: files dropped for a
few orders (some equal but for case, some with the same bytes), time passing, the outbox paused and resumed,
answers lost, and loop steps whose actions a model carries out as the shell would. Whatever the sequence:
no order ever has files in two open batches, the same bytes never reach an order twice, a paused outbox
makes no call, only due batches step, the wake-up time is honest, and once nothing blocks them every file
is delivered or found a duplicate."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from invoicesync.model import BatchState
from invoicesync.pause import NOT_PAUSED, Pause, refused
from invoicesync.plan import PlanItem
from invoicesync.step import (
    Batching,
    Duplicate,
    Earlier,
    LookForLost,
    NewBatch,
    OpenBatch,
    Poll,
    SendingView,
    Upload,
    due_steps,
    next_wake,
    plan_sending,
    wake_at,
)

BATCHING = Batching(max_files=3, max_bytes=10_000, max_wait_seconds=5.0)
ORDERS = st.sampled_from(["ORDER1", "order1", "ORDER2", "ORDER3"])
BYTES = st.sampled_from(["aa", "bb"])


@dataclass
class FileModel:
    item_id: str
    order_id: str
    sha256: str
    ready_since: float
    state: str = "ready"  # ready -> batched -> done


@dataclass
class BatchModel:
    batch_id: str
    item_ids: tuple[str, ...]
    state: BatchState = BatchState.PLANNED
    next_attempt_at: float = 0.0


@dataclass
class World:
    now: float = 1000.0
    files: dict[str, FileModel] = field(default_factory=dict)
    batches: dict[str, BatchModel] = field(default_factory=dict)
    delivered: dict[tuple[str, str], int] = field(default_factory=dict)  # (order, bytes) -> deliveries
    pause: Pause = NOT_PAUSED
    lose_next_answer: bool = False

    def view(self) -> SendingView:
        ready = [f for f in self.files.values() if f.state == "ready"]
        return SendingView(
            ready=[PlanItem(f.item_id, f.order_id, "pdf", 100, f.ready_since) for f in ready],
            delivered={
                f.item_id: Earlier("earlier.pdf", "IMP", None, "sandbox")
                for f in ready
                if self.delivered.get((f.order_id, f.sha256))
            },
            orders_busy={f.order_id for f in self.files.values() if f.state == "batched"},
        )

    def open_batches(self) -> list[OpenBatch]:
        return [
            OpenBatch(b.batch_id, b.state, b.next_attempt_at)
            for b in self.batches.values()
            if b.state is not BatchState.DONE
        ]


class DeliverySteps(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()

    @rule(order_id=ORDERS, sha256=BYTES)
    def drop(self, order_id: str, sha256: str) -> None:
        item_id = f"item{len(self.world.files)}"
        self.world.files[item_id] = FileModel(item_id, order_id, sha256, self.world.now)

    @rule(seconds=st.floats(min_value=0.0, max_value=40.0))
    def time_passes(self, seconds: float) -> None:
        self.world.now += seconds

    @rule()
    def credentials_refused(self) -> None:
        self.world.pause = refused(
            self.world.pause, "401", self.world.now, first_seconds=1.0, max_seconds=60.0
        )

    @rule()
    def credentials_fixed(self) -> None:
        self.world.pause = NOT_PAUSED

    @rule()
    def next_answer_lost(self) -> None:
        self.world.lose_next_answer = True

    @rule(flush=st.booleans(), more_coming=st.booleans())
    def loop_step(self, flush: bool, more_coming: bool) -> None:
        self.step(flush=flush, more_coming=more_coming)

    @rule()
    def everything_goes_once_nothing_blocks(self) -> None:
        self.world.pause = NOT_PAUSED
        self.world.lose_next_answer = False
        for _ in range(50):
            if all(f.state == "done" for f in self.world.files.values()):
                break
            self.step(flush=True, more_coming=False)
            wake = wake_at(self.world.open_batches(), self.world.pause)
            self.world.now = max(self.world.now, wake or self.world.now) + 0.001
        assert all(f.state == "done" for f in self.world.files.values())

    def step(self, *, flush: bool, more_coming: bool) -> None:
        world = self.world
        view = world.view()
        sending = plan_sending(view, world.now, batching=BATCHING, flush=flush, more_coming=more_coming)
        busy = {order.casefold() for order in view.orders_busy}
        seen: set[str] = set()
        opened_orders: list[str] = []
        for action in sending.actions:
            match action:
                case Duplicate(item_id=item_id):
                    assert item_id in view.delivered
                    assert item_id not in seen
                    seen.add(item_id)
                    world.files[item_id].state = "done"
                case NewBatch(planned=planned):
                    for item in planned.items:
                        assert item.item_id not in seen and item.item_id not in view.delivered
                        assert item.order_id.casefold() not in busy
                        seen.add(item.item_id)
                        opened_orders.append(item.order_id.casefold())
                        world.files[item.item_id].state = "batched"
                    batch_id = f"batch{len(world.batches)}"
                    world.batches[batch_id] = BatchModel(batch_id, tuple(i.item_id for i in planned.items))
        assert len(opened_orders) == len(set(opened_orders))  # one file per order in a round

        open_before = world.open_batches()
        steps = due_steps(open_before, world.pause, world.now)
        if world.pause.blocks(world.now):
            assert steps == []
        else:
            due = {b.batch_id for b in open_before if b.next_attempt_at <= world.now}
            assert {s.batch_id for s in steps} == due
        for step in steps:
            batch = world.batches[step.batch_id]
            assert batch.next_attempt_at <= world.now
            match step:
                case Upload():
                    assert batch.state is BatchState.PLANNED
                    if world.lose_next_answer:  # the marketplace took it, the answer never came
                        world.lose_next_answer = False
                        batch.state, batch.next_attempt_at = BatchState.UPLOADING, world.now + 1.0
                    else:
                        batch.state, batch.next_attempt_at = BatchState.SUBMITTED, world.now + 2.0
                case LookForLost():
                    assert batch.state is BatchState.UPLOADING
                    batch.state, batch.next_attempt_at = BatchState.SUBMITTED, world.now + 2.0
                case Poll():
                    assert batch.state is BatchState.SUBMITTED
                    batch.state = BatchState.DONE
                    for item_id in batch.item_ids:
                        f = world.files[item_id]
                        f.state = "done"
                        world.delivered[(f.order_id, f.sha256)] = (
                            world.delivered.get((f.order_id, f.sha256), 0) + 1
                        )

        open_after = world.open_batches()
        wake = wake_at(open_after, world.pause)
        if not open_after:
            assert wake is None
        else:
            assert wake is not None
            assert wake >= world.pause.until
            assert wake <= max(min(b.next_attempt_at for b in open_after), world.pause.until)

    @invariant()
    def no_order_in_two_open_batches(self) -> None:
        orders: list[str] = []
        for batch in self.world.batches.values():
            if batch.state is not BatchState.DONE:
                orders += list({self.world.files[i].order_id.casefold() for i in batch.item_ids})
        assert len(orders) == len(set(orders))

    @invariant()
    def the_same_bytes_reach_an_order_once(self) -> None:
        assert all(count == 1 for count in self.world.delivered.values())


DeliverySteps.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_delivery_steps = DeliverySteps.TestCase


def test_the_loop_sleeps_until_the_first_thing_due_on_either_clock_never_less_than_zero() -> None:
    assert next_wake(monotonic=10.0, wall=1000.0, monotonic_dues=(15.0, None), wall_dues=(1003.0,)) == 3.0
    assert next_wake(monotonic=10.0, wall=1000.0, monotonic_dues=(9.0,), wall_dues=()) == 0.0
    assert next_wake(monotonic=10.0, wall=1000.0, monotonic_dues=(None,), wall_dues=(None,)) == 0.0
