"""service (shell): the daemon: one loop per outbox, signals, systemd, the single-instance lock.

`Service(config, once=...)` locks `state_dir`, starts the built-in sandbox when an outbox uses it,
builds one `Worker` per outbox (each with its own journal connection and marketplace client) and
runs each in its own thread, woken by its timers and by watchdog events. The main thread handles
SIGTERM (stop at a safe point, exit 0), SIGHUP (reload the configuration) and sd_notify.
`once` runs the same loops with `flush` set until every outbox is idle.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from invoicesync.checks.pool import Checkers

if TYPE_CHECKING:
    from invoicesync.metrics import Metrics
    from invoicesync.notify import Messenger
from invoicesync.config import Config, OutboxSettings
from invoicesync.errors import InvoicesyncError, ServiceError
from invoicesync.headstart import HeadStart
from invoicesync.inbox.runner import InboxRunner
from invoicesync.journal import journal_problem, orphans_problem
from invoicesync.marketplaces import Marketplace
from invoicesync.marketplaces.deadline import abort_all, resume_all
from invoicesync.outbox import Folders, this_host
from invoicesync.rootlock import RootLock, acquire_root
from invoicesync.sandbox import Sandbox
from invoicesync.statedir import JOURNAL_NAME, acquire_lock, write_status
from invoicesync.systemd import Notifier
from invoicesync.wiring import Loop, assemble, make_marketplace, sandbox_options

LOOP_ERROR_BACKOFF_SECONDS = 5.0
# Loops wake at least this often (health checks, heartbeat); a stop, an event or a timer wakes them at once.
# Every wake costs a few queries and a look at the mounts: once a second was 0.1 % of a CPU while idle.
MAX_WAIT_SECONDS = 5.0
# The main thread's round (status.json, watchdog, a reload, a stop) is also run at once after each loop's
# round (`_round_done`), so status follows every change; 0.2 s for `once`, which waits for the loops to end.
SUPERVISE_SECONDS = 1.0


class Service:
    def __init__(
        self,
        config: Config,
        *,
        once: bool = False,
        once_wait_seconds: float | None = None,
        notifier: Notifier | None = None,
        on_progress: Callable[[dict[str, int]], None] | None = None,
        marketplace_for: Callable[[OutboxSettings, Sandbox | None], Marketplace] = make_marketplace,
        head_start: HeadStart | None = None,
    ) -> None:
        self.config = config
        self.marketplace_for = marketplace_for  # the seam to each outbox's marketplace
        self.once = once
        self.once_wait_seconds = once_wait_seconds  # `once` stops after this long, leaving what is unfinished
        self.notifier = notifier or Notifier()
        self.on_progress = on_progress
        self.log = structlog.get_logger("invoicesync")
        self.host = this_host()
        self._stop = threading.Event()
        self._root_locks: dict[Path, RootLock] = {}
        self._reload = threading.Event()
        self._round_done = threading.Event()  # set by the loop threads only, never by a signal handler
        self._loops: list[Loop] = []
        self._inboxes: list[InboxRunner] = []  # `run` only: `once` delivers, `invoicesync inbox` fetches
        self._sandbox: Sandbox | None = None
        self._status_written: dict[str, Any] = {}
        self._status_troubles: list[str] | None = None  # what systemd's STATUS= last said
        self._mounts: dict[Path, str | None] = {}  # each root prepared once, with its mount at the time
        self._final_tally = {"sent": 0, "failed": 0, "in_flight": 0, "waiting": 0}
        # content checks, every outbox: the head start's when the CLI made one (`headstart`)
        self._head_start = head_start
        self._checkers = (
            Checkers(workers=config.checkers, log=self.log) if head_start is None else head_start.checkers
        )
        self._metrics: Metrics | None = None
        self._messenger: Messenger | None = None
        self._running = False
        self._running_lock = threading.RLock()

    # -- control from signal handlers --------------------------------------------------------

    def request_stop(self) -> None:
        """SIGTERM: stop at a safe point; a request in progress is cut short (within a second), its outcome
        left to the journal's protocol (an upload whose answer is lost is looked up at the next start)."""
        self._stop.set()
        with self._running_lock:  # re-entrant: the handler may run in the thread that holds it
            if self._running:  # after `run` ended, cutting requests short would hit the next service
                abort_all()
        for loop in self._loops:
            loop.wake.set()

    def request_reload(self) -> None:
        self._reload.set()

    # -- running -----------------------------------------------------------------------------

    def run(self, reload_config: Callable[[], Config] | None = None) -> dict[str, int]:
        """Run until stopped (or, with `once`, until idle). Returns the tally of finished files."""
        try:
            lock = acquire_lock(self.config.state_dir)
        except BaseException:  # another daemon has this state: checkers a head start began are not needed
            self._checkers.close()
            raise
        with self._running_lock:
            self._running = True
            resume_all()  # requests cut short by an earlier stop in this process may run again
        try:
            for box in self.config.outboxes:  # another daemon on a root is the first thing to know
                if box.root.is_dir():
                    self._lock_root(box.root)
            self._trust_journal()
            for warning in self.config.warnings:
                self.log.warning("config_secret_exposed", problem=warning)
            if self.config.metrics is not None:
                from invoicesync.metrics import Metrics  # prometheus_client only when metrics are on

                self._metrics = Metrics(self.config)
                self._metrics.start()
                self.log.info("metrics_serving", listen=self.config.metrics.listen)
            if self.config.notify is not None:
                from invoicesync.notify import Messenger  # apprise only when notifications are on

                self._messenger = Messenger(self.config.notify)
                self._messenger.start()
            self._start()
            self.notifier.ready()
            self.log.info("service_ready", outboxes=len(self._loops), once=self.once)
            self._supervise(reload_config)
        finally:
            self.notifier.stopping()
            self._shutdown()
            for root_lock in list(self._root_locks.values()):
                root_lock.release()
            self._root_locks.clear()
            lock.close()
            with self._running_lock:
                self._running = False
                resume_all()
        return self._final_tally

    def _root_ready(self, folders: Folders) -> None:
        self._mounts[folders.root] = folders.mount

    def _lock_root(self, root: Path) -> None:
        """`root` locked for this daemon before anything in it is touched (see `rootlock`)."""
        if root in self._root_locks:
            return
        lock = acquire_root(root, host=self.host, state_dir=self.config.state_dir)
        if lock.taken_over is not None:
            self.log.warning(
                "root_lock_taken_over",
                root=str(root),
                **{f"stale_{key}": value for key, value in lock.taken_over.items()},
            )
        self._root_locks[root] = lock

    def _unlock_unused_roots(self) -> None:
        wanted = {box.root for box in self.config.outboxes}
        for root in [root for root in list(self._root_locks) if root not in wanted]:
            self._root_locks.pop(root).release()

    def _trust_journal(self) -> None:
        """Before anything is claimed: a damaged journal, or one gone while files are in flight, stops
        the start with what to do (either would send files again)."""
        path = self.config.state_dir / JOURNAL_NAME
        processing = [box.root / ".processing" for box in self.config.outboxes]
        problem = journal_problem(path) or orphans_problem(path, processing)
        if problem is not None:
            raise ServiceError(problem)

    def tally(self) -> dict[str, int]:
        states = [loop.worker.state() for loop in self._loops]
        sent = sum(state.sent for state in states)
        failed = sum(state.failed for state in states)
        in_flight = sum(state.open for state in states)  # claimed, as `status` says
        waiting = sum(state.empty for state in states)  # still in outbox/ (empty)
        return {"sent": sent, "failed": failed, "in_flight": in_flight, "waiting": waiting}

    def unfinished(self) -> list[str]:
        """Per outbox with files not finished: how many, and why (a pause, a problem, the last error)."""
        lines = []
        for loop in self._loops:
            state = loop.worker.state()
            waiting = state.open + state.empty
            if waiting:
                why = (
                    state.paused
                    or state.problem
                    or state.last_error
                    or "still in progress when the wait ran out (checks, requests being retried, or "
                    "imports the marketplace had not finished; see the log)"
                )
                lines.append(f"outbox {state.name!r}: {waiting} file(s) not finished: {why}")
        return lines

    def blocked_outboxes(self) -> list[str]:
        """Outboxes stopped for a reason a person must fix (credentials, seller, folders, state_dir)."""
        return [loop.worker.name for loop in self._loops if self._stuck(loop)]

    @property
    def sandbox(self) -> Sandbox | None:
        """The built-in sandbox when an outbox uses it (tests change its faults while running)."""
        return self._sandbox

    @staticmethod
    def _stuck(loop: Loop) -> bool:
        return loop.worker.state().stuck

    def _start(self) -> None:
        if self.config.uses_sandbox and self._sandbox is None:
            self._sandbox = Sandbox.start(sandbox_options(self.config))
            self.log.info("sandbox_started", base_url=self._sandbox.base_url)
        for box in self.config.outboxes:
            self._loops.append(self._build(box))
        for loop in self._loops:
            loop.thread = threading.Thread(
                target=self._run_loop, args=(loop,), name=f"outbox-{loop.worker.name}", daemon=True
            )
            loop.thread.start()
        if not self.once:
            for box in self.config.outboxes:
                if box.inbox.enabled:
                    runner = InboxRunner(
                        box, self.config.state_dir, self._sandbox, self.log.bind(outbox=box.name)
                    )
                    runner.start()
                    self._inboxes.append(runner)

    def _build(self, box: OutboxSettings) -> Loop:
        # A root already prepared (a reload) is not prepared again: its share may be unmounted now, and
        # folders made then would land on the disk beneath; its health check waits for it instead.
        known = box.root in self._mounts
        folders = Folders(
            box.root,
            self.host,
            ignore=box.files.ignore,
            mount=self._mounts.get(box.root),
            create_root=box.create_root,
            lock=self._lock_root,
            prepared=known,
            # a root prepared later (it was missing) is known from then on: a reload never prepares it again
            on_prepared=self._root_ready,
        )
        if not known and folders.prepare():  # a missing root: its health says so, and prepares it later
            self.log.info("outbox_root_created", outbox=box.name, root=str(box.root))
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        marketplace = self.marketplace_for(box, self._sandbox)
        loop = assemble(
            box,
            folders,
            marketplace,
            state_dir=self.config.state_dir,
            checkers=self._checkers,
            log=self.log.bind(outbox=box.name),
            first_look=None if self._head_start is None else self._head_start.first_look(folders.outbox),
        )
        worker = loop.worker
        if not known:  # adoption is for files a crash left unjournaled: a reload leaves none
            worker.recover()
        return loop

    def _run_loop(self, loop: Loop) -> None:
        woken = False
        while not (self._stop.is_set() or loop.stop.is_set()):
            try:
                delay = loop.worker.tick(flush=self.once, woken=woken)
            except Exception:
                self.log.exception("outbox_loop_failed", outbox=loop.worker.name)
                delay = LOOP_ERROR_BACKOFF_SECONDS
            loop.heartbeat = time.monotonic()
            self._round_done.set()
            if not loop.watcher.alive():  # e.g. outbox/ was removed: its events ended for good
                loop.watcher.stop()
                loop.worker.scan_interval_seconds = loop.worker.settling_interval_seconds
                loop.worker.next_scan_at = 0.0  # and list it now: the next rescan may be far away
                self.log.warning("watch_events_stopped", outbox=loop.worker.name, watching="poll")
            if self.once and (loop.worker.idle() or self._stuck(loop)):
                loop.done = True
                self._round_done.set()  # the supervisor need not wait for its next round to see it
                return
            loop.wake.wait(timeout=min(delay, MAX_WAIT_SECONDS))
            loop.wake.clear()
            woken, loop.changed = loop.changed, False

    def _supervise(self, reload_config: Callable[[], Config] | None) -> None:
        interval = self.notifier.watchdog_interval_seconds()
        started = time.monotonic()
        while not self._stop.is_set():
            if self.once and all(loop.done for loop in self._loops):
                return
            waited = time.monotonic() - started
            if self.once and self.once_wait_seconds is not None and waited >= self.once_wait_seconds:
                self.log.warning("once_time_up", wait_seconds=self.once_wait_seconds, **self.tally())
                self.request_stop()  # requests in progress are cut short; the journal settles them
                return
            if self._reload.is_set() and reload_config is not None:
                self._reload.clear()
                self._do_reload(reload_config)
            if interval is not None and self._healthy():
                self.notifier.watchdog()
            self._write_status()
            # a copy: a loop thread adds the lock of a root that appeared after start (`Folders.prepare`)
            for root_lock in list(self._root_locks.values()):
                root_lock.refresh()
            if self.on_progress is not None:
                self.on_progress(self.tally())
            pause = 0.2 if self.once or self.on_progress is not None else SUPERVISE_SECONDS
            self._round_done.wait(timeout=pause if interval is None else min(pause, interval))
            self._round_done.clear()

    def _healthy(self) -> bool:
        limit = time.monotonic() - 60.0
        return all(loop.heartbeat > limit for loop in self._loops)

    def _do_reload(self, reload_config: Callable[[], Config]) -> None:
        try:
            config = reload_config()
        except Exception as exc:
            self.log.error("reload_failed", reason=str(exc))
            return
        if config.state_dir != self.config.state_dir:
            self.log.error("reload_failed", reason="state_dir cannot change on reload; restart the service")
            return
        previous = self.config
        for warning in config.warnings:
            self.log.warning("config_secret_exposed", problem=warning)
        self.notifier.reloading()
        self._stop_loops()
        if self._stop.is_set():  # SIGTERM while the loops finished their step: no new loops to stop again
            return
        self.config = config
        self._loops = []
        if self._sandbox is not None and config.uses_sandbox:  # its faults and orders as now configured
            self._sandbox.set_options(sandbox_options(config))
        try:
            self._start()
        except InvoicesyncError as exc:  # e.g. a new outbox's root cannot be made: keep the old set
            self.log.error("reload_failed", reason=str(exc))
            self._stop_loops()
            self.config = previous
            self._loops = []
            self._start()
        self._unlock_unused_roots()
        self.notifier.ready()
        self.log.info("service_reloaded", outboxes=len(self._loops))

    def _write_status(self) -> None:
        """status.json for `invoicesync status`, and systemd's STATUS=, whenever they change. A state_dir
        that cannot take the file is already said by each outbox's health; the daemon goes on."""
        status = {}
        for loop in self._loops:
            state = loop.worker.state()
            status[state.name] = {
                "paused": state.paused,
                "problem": state.problem,
                "last_error": state.last_error,
                "settling": state.settling,
                "empty": state.empty,
            }
        if status == self._status_written:
            return
        troubles = [
            f"{name}: {'paused' if info['paused'] else 'stopped'}: {info['paused'] or info['problem']}"
            for name, info in status.items()
            if info["paused"] or info["problem"]
        ]
        if troubles != self._status_troubles:
            self.notifier.status("; ".join(troubles) if troubles else "delivering")
            self._status_troubles = troubles
        try:
            write_status(self.config.state_dir, status)
        except OSError as exc:  # tried again on the next round, until the state_dir takes it
            self.log.debug("status_not_written", reason=exc.strerror or str(exc))
            return
        self._status_written = status

    def _stop_loops(self) -> None:
        for runner in self._inboxes:  # a download under way ends first (its file is whole or not there)
            runner.stop()
        self._inboxes = []
        for loop in self._loops:
            loop.stop.set()
            loop.wake.set()
        for loop in self._loops:
            # No time limit: a loop mid-upload finishes that exchange (bounded by its deadline; SIGTERM cuts
            # it short) before its journal closes, so a reload never runs two loops on one outbox.
            if loop.thread is not None:
                loop.thread.join()
            loop.worker.intake.queue.abandon()
            loop.worker.delivery.close()
            loop.watcher.stop()
            loop.marketplace.close()
            loop.journal.close()
        self._final_tally = self.tally()

    def _shutdown(self) -> None:
        self._stop_loops()
        if self._metrics is not None:
            self._metrics.stop()
            self._metrics = None
        if self._messenger is not None:  # after the loops: their last files are in the digest
            self._messenger.stop()
            self._messenger = None
        self._checkers.close()
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None
        self.log.info("service_stopped", max_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
