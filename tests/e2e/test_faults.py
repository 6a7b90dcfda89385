"""Resilience end to end: `invoicesync run`, `once`, `status` and `sandbox` as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.badfiles import sample_pdf, sample_ubl
from tests.conftest import wait_for
from tests.e2e.conftest import Daemon, invoicesync
from tests.harness import drop, files_in, leftovers, write_config

SECRET = "s3cret-value-for-tests"
WRONG_SECRET = "not-the-s3cret-at-all"


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and WRONG_SECRET not in text
        assert not re.search(r"Bearer (?!\[redacted\])\S+", text)


def drop_many(root: Path, prefix: str, count: int) -> None:
    for n in range(count):
        order = f"{prefix}{n:04d}"
        drop(root, f"{order}.pdf", sample_pdf(order)) if n % 2 else drop(
            root, f"{order}.xml", sample_ubl(order)
        )


def rewrite(config: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = yaml.safe_load(config.read_text())
    change(document)
    config.write_text(yaml.safe_dump(document, sort_keys=False))


def test_sighup_after_fixing_the_secret_resumes_at_once(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    secret_file = tmp_path / "octopia-secret"
    secret_file.write_text(WRONG_SECRET + "\n")
    # A paused outbox tries again after poll.first_seconds, doubling up to 30 s: here 30 s at once, so
    # only the reload can explain a delivery within the next 20 s.
    config = write_config(tmp_path, outbox_overrides={"poll": {"first_seconds": 30, "max_seconds": 30}})

    def use_secret_file(document: dict[str, Any]) -> None:
        octopia = document["outboxes"][0]["octopia"]
        del octopia["client_secret"]
        octopia["client_secret_file"] = str(secret_file)

    rewrite(config, use_secret_file)
    root = tmp_path / "shop"
    drop_many(root, "HUPS", 6)
    daemon = start_daemon(config)
    wait_for(lambda: "outbox_paused" in daemon.output(), timeout_seconds=30, what="paused")
    wait_for(lambda: not list((root / "outbox").iterdir()), timeout_seconds=20, what="claimed meanwhile")

    shown = invoicesync("status", "-c", str(config), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "PAUSED: Octopia refused the credentials" in shown.stdout and "in_flight=6" in shown.stdout
    as_json = json.loads(invoicesync("status", "-c", str(config), "--json", cwd=tmp_path).stdout)
    assert as_json["daemon_running"] is True
    assert "(401)" in as_json["outboxes"][0]["paused"]
    assert files_in(root, "failed") == []

    secret_file.write_text(SECRET + "\n")
    rewrite(
        config,
        lambda document: document["outboxes"][0].update(poll={"first_seconds": 0.1, "max_seconds": 0.5}),
    )
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(files_in(root, "sent")) == 6, timeout_seconds=20, what="sent after SIGHUP")
    assert leftovers(root) == [] and files_in(root, "failed") == []
    assert daemon.terminate() == 0
    output = daemon.output()
    assert "service_reloaded" in output and "Traceback" not in output
    assert output.count('"outbox_paused"') == 1
    assert_no_secret(output, shown.stdout, *(p.read_text() for p in (root / "sent").glob("*.json")))


def test_once_rides_out_faults_set_in_the_config(tmp_path: Path) -> None:
    faults = {"error_rate": 0.15, "rate_limit_rate": 0.1, "slow_rate": 0.05, "slow_seconds": 0.1, "seed": 3}
    config = write_config(
        tmp_path, faults=faults, processing_seconds=0.5, outbox_overrides={"batch": {"max_files": 5}}
    )
    rewrite(config, lambda document: document.update(log={"format": "json", "level": "debug"}))
    root = tmp_path / "shop"
    drop_many(root, "ONCE", 30)
    result = invoicesync("once", "-c", str(config), cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "sent=30 failed=0 in_flight=0 waiting=0"
    assert leftovers(root) == []
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    retried = [event for event in events if event["event"] == "request_retried"]
    assert retried and all(event["level"] == "debug" for event in retried)  # the faults happened, retried
    assert "stamina" not in result.stderr  # folded into our own event
    assert_no_secret(result.stdout, result.stderr)


def test_state_dir_unusable_at_start_exits_1_with_one_sentence(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    rewrite(config, lambda document: document.update(state_dir=str(tmp_path / "not-a-folder")))
    (tmp_path / "not-a-folder").write_text("a file where the state directory should be\n")
    result = invoicesync("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "state directory" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`invoicesync sandbox --port 0 FLAGS…` as a process; returns its base_url."""
    processes: list[subprocess.Popen[str]] = []

    def start(*flags: str) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", "invoicesync", "sandbox", "--port", "0", *flags],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ},
        )
        processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()  # "sandbox listening: base_url=… token_url=…"
        found = re.search(r"base_url=(\S+)", line)
        assert found, line
        return found.group(1)

    yield start
    for process in processes:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_sandbox_flags_set_every_fault(sandbox_process: Callable[..., str]) -> None:
    base_url = sandbox_process(
        "--error-rate", "0.3",
        "--rate-limit-rate", "0.3",
        "--retry-after-seconds", "7",
        "--slow-rate", "0.3",
        "--slow-seconds", "0.01",
        "--token-ttl-seconds", "5",
        "--seed", "11",
    )  # fmt: skip
    origin = base_url.removesuffix("/seller/v2")
    with httpx.Client(timeout=10) as client:
        answers = [client.get(f"{base_url}/order-invoice-imports") for _ in range(60)]
        stats = client.get(f"{origin}/_sandbox/stats").json()
    statuses = {answer.status_code for answer in answers}
    assert {401, 429} <= statuses and statuses & {500, 503}
    limited = next(answer for answer in answers if answer.status_code == 429)
    assert limited.headers["retry-after"] == "7"  # the first 429 gives seconds, the next an HTTP date
    assert {"rate_limit", "slow"} <= set(stats["faults"])


def test_refuse_tokens_flag_refuses_every_token(sandbox_process: Callable[..., str]) -> None:
    base_url = sandbox_process("--refuse-tokens")
    origin = base_url.removesuffix("/seller/v2")
    form = {"grant_type": "client_credentials", "client_id": "any", "client_secret": "any"}
    answer = httpx.post(f"{origin}/auth/realms/maas/protocol/openid-connect/token", data=form, timeout=10)
    assert answer.status_code == 401


def test_sighup_applies_changed_sandbox_faults_and_the_last_error_outlives_a_restart(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    """13.16: `refuse_tokens: false` after SIGHUP took no effect; `last_error` was gone after a restart."""
    config = write_config(tmp_path, faults={"refuse_tokens": True})  # only the reload can lift it
    root = tmp_path / "shop"
    drop_many(root, "HUPF", 2)
    daemon = start_daemon(config)
    wait_for(lambda: "outbox_paused" in daemon.output(), timeout_seconds=30, what="paused")
    rewrite(config, lambda document: document["sandbox"]["faults"].update(refuse_tokens=False))
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(files_in(root, "sent")) == 2, timeout_seconds=20, what="sent after the reload")
    assert daemon.terminate() == 0
    stopped = json.loads(invoicesync("status", "--json", "-c", str(config), cwd=tmp_path).stdout)
    said = stopped["outboxes"][0]["last_error"]
    assert said and "refused" in said.lower(), stopped
    daemon = start_daemon(config)
    wait_for(lambda: "service_ready" in daemon.output(), timeout_seconds=30, what="started again")
    running = json.loads(invoicesync("status", "--json", "-c", str(config), cwd=tmp_path).stdout)
    assert running["daemon_running"] and running["outboxes"][0]["last_error"] == said
    assert_no_secret(daemon.output(), json.dumps(running))
