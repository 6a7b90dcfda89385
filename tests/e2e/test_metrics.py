"""Metrics for the admin (issue 16): a running daemon serves Prometheus metrics on 127.0.0.1 when
`metrics.listen` is set, counted from its own events, and they say the same numbers as `status --json`."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.badfiles import sample_pdf
from tests.conftest import wait_for
from tests.e2e.conftest import Daemon, invoicesync
from tests.harness import drop, files_in, write_config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_the_run_and_say_what_status_says(tmp_path: Path) -> None:
    config = write_config(tmp_path, faults={"error_rate": 0.2, "seed": 4, "retry_after_seconds": 0})
    port = _free_port()
    document = yaml.safe_load(config.read_text())
    document["metrics"] = {"listen": f"127.0.0.1:{port}"}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    root = tmp_path / "shop"
    daemon = Daemon(config, tmp_path)
    try:
        for n in range(12):
            drop(root, f"METR{n:04d}.pdf", sample_pdf(f"METR{n:04d}"))
        drop(root, "not an order.pdf", sample_pdf("METR9999"))
        wait_for(
            lambda: len(files_in(root, "sent")) + len(files_in(root, "failed")) == 13,
            timeout_seconds=60,
            what="all finished",
        )
        wait_for(lambda: "metrics_serving" in daemon.output(), timeout_seconds=10, what="serving")
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        status = json.loads(invoicesync("status", "--json", "-c", str(config), cwd=tmp_path).stdout)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    samples = _samples(scraped)
    box = (("marketplace", "octopia"), ("outbox", "shop"))
    row = status["outboxes"][0]
    for key in ("waiting", "in_flight", "sent_today", "failed_today"):
        name = f"invoicesync_files_{key}"
        assert samples[(name, box)] == row[key], (key, samples[(name, box)], row)
    assert samples[("invoicesync_paused", box)] == 0.0
    sent = (("code", ""), ("marketplace", "octopia"), ("outbox", "shop"), ("outcome", "sent"))
    failed = (
        ("code", "InvalidFileName"),
        ("marketplace", "octopia"),
        ("outbox", "shop"),
        ("outcome", "failed"),
    )
    assert samples[("invoicesync_files_finished_total", sent)] == 12
    assert samples[("invoicesync_files_finished_total", failed)] == 1
    assert samples[("invoicesync_uploads_total", box)] >= 1
    assert samples[("invoicesync_check_seconds_count", box)] == 13
    assert samples[("invoicesync_upload_to_outcome_seconds_count", box)] >= 1
    assert samples[("invoicesync_last_success_timestamp_seconds", box)] > 0
    assert "s3cret" not in scraped
    served = {name for name, _ in samples}
    rules = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "systemd" / "invoicesync.alerts.yml").read_text()
    )
    named = {
        n
        for group in rules["groups"]
        for rule in group["rules"]
        for n in re.findall(r"invoicesync_[a-z_]+", rule["expr"])
    }
    assert named and named <= served, named - served  # the sample alert rules name only what is served
