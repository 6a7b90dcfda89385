"""metrics (shell): Prometheus metrics for the admin, off unless `metrics: {listen: HOST:PORT}` is set.

Two sources, so nothing is counted twice or in a second way:

- the daemon's own log events (`logs.OBSERVERS`): files finished by outcome and code, uploads, retries by
  cause, pauses, the time a check took and the time from upload to outcome, the last delivery's time;
- at each scrape, `statusview.status_rows` — what `invoicesync status --json` prints — for files waiting,
  in flight, the age of the oldest in flight, sent and failed today, paused and stopped: the two say the
  same numbers by construction.

Every series carries `outbox` and `marketplace`. The endpoint is plain HTTP: keep it on 127.0.0.1 (the
default) or behind the scraper's network rules.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from invoicesync.config import Config
from invoicesync.errors import ServiceError
from invoicesync.logs import OBSERVERS
from invoicesync.statusview import status_rows

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86400)
RETRY_CAUSES = {  # log event -> the retry's cause
    "batch_step_deferred": "deferred",  # 5xx, 429, no connection: the step is tried again later
    "upload_answer_lost": "answer_lost",  # looked up before anything is sent again
    "lost_upload_absent": "resent",  # proven absent: sent again
}


class Metrics:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self._marketplace = {box.name: box.marketplace for box in config.outboxes}
        labels = ("outbox", "marketplace")
        self.files = Counter(
            "invoicesync_files_finished",
            "Files moved to sent/ or failed/.",
            [*labels, "outcome", "code"],
            registry=self.registry,
        )
        self.uploads = Counter(
            "invoicesync_uploads", "Requests that carried files.", labels, registry=self.registry
        )
        self.retries = Counter(
            "invoicesync_retries", "Steps tried again, by cause.", [*labels, "cause"], registry=self.registry
        )
        self.pauses = Counter(
            "invoicesync_pauses", "Times uploads were paused.", labels, registry=self.registry
        )
        self.check_seconds = Histogram(
            "invoicesync_check_seconds",
            "Time a file's content check took.",
            labels,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.outcome_seconds = Histogram(
            "invoicesync_upload_to_outcome_seconds",
            "Time from a request's upload to its files' outcome.",
            labels,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "invoicesync_last_success_timestamp_seconds",
            "When a file last went to sent/ (Unix time).",
            labels,
            registry=self.registry,
        )
        self.registry.register(_StatusCollector(config, self._marketplace))
        self._server: Any = None

    def observe(self, event: str, fields: Mapping[str, Any]) -> None:
        """Count one log event of the daemon."""
        outbox = fields.get("outbox")
        if not isinstance(outbox, str) or outbox not in self._marketplace:
            return
        labels = (outbox, self._marketplace[outbox])
        if event == "file_finished":
            outcome = str(fields.get("outcome"))
            self.files.labels(*labels, outcome, str(fields.get("code") or "")).inc()
            if outcome == "sent":
                self.last_success.labels(*labels).set(time.time())
        elif event == "batch_uploaded":
            self.uploads.labels(*labels).inc()
        elif event in RETRY_CAUSES:
            self.retries.labels(*labels, RETRY_CAUSES[event]).inc()
        elif event == "outbox_paused":
            self.pauses.labels(*labels).inc()
        elif event in ("file_ready", "file_refused") and isinstance(fields.get("check_seconds"), float):
            self.check_seconds.labels(*labels).observe(fields["check_seconds"])
        elif event == "import_finished" and isinstance(fields.get("seconds"), float):
            self.outcome_seconds.labels(*labels).observe(fields["seconds"])

    def start(self) -> None:
        """Serve /metrics on `metrics.listen` and count the log events from now on."""
        assert self.config.metrics is not None
        host, port = self.config.metrics.address
        try:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ServiceError(
                f"The metrics endpoint cannot listen on {self.config.metrics.listen} "
                f"({exc.strerror or exc}). Choose another metrics.listen, or stop what uses that port."
            ) from None
        OBSERVERS.append(self.observe)

    def stop(self) -> None:
        if self.observe in OBSERVERS:
            OBSERVERS.remove(self.observe)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _StatusCollector(Collector):
    """The figures of `invoicesync status`, read at each scrape."""

    def __init__(self, config: Config, marketplace: Mapping[str, str]) -> None:
        self._config = config
        self._marketplace = marketplace

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["outbox", "marketplace"]
        families = {
            "waiting": GaugeMetricFamily(
                "invoicesync_files_waiting", "Files in outbox/ not yet claimed.", labels=labels
            ),
            "in_flight": GaugeMetricFamily(
                "invoicesync_files_in_flight", "Files claimed, not yet finished.", labels=labels
            ),
            "sent_today": GaugeMetricFamily(
                "invoicesync_files_sent_today", "Files sent since midnight.", labels=labels
            ),
            "failed_today": GaugeMetricFamily(
                "invoicesync_files_failed_today", "Files failed since midnight.", labels=labels
            ),
            "paused": GaugeMetricFamily(
                "invoicesync_paused", "1 while the outbox's uploads are paused.", labels=labels
            ),
            "stopped": GaugeMetricFamily(
                "invoicesync_stopped", "1 while a problem stops the outbox.", labels=labels
            ),
            "oldest": GaugeMetricFamily(
                "invoicesync_oldest_in_flight_age_seconds",
                "Age of the oldest file in flight (0: none).",
                labels=labels,
            ),
        }
        _, rows = status_rows(self._config)
        now = time.time()
        for row in rows:
            values = [row["outbox"], self._marketplace.get(row["outbox"], "")]
            for key in ("waiting", "in_flight", "sent_today", "failed_today"):
                families[key].add_metric(values, float(row[key]))
            families["paused"].add_metric(values, 1.0 if row["paused"] else 0.0)
            families["stopped"].add_metric(values, 1.0 if row["problem"] else 0.0)
            since = row["in_flight_since"]
            age = now - datetime.fromisoformat(since).timestamp() if since else 0.0
            families["oldest"].add_metric(values, max(0.0, age))
        yield from families.values()
