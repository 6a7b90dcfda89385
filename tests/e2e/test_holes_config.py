"""Issue 12 items 14 and 26 (status): plain http:// is refused except to this machine, a secret written in a
file every user may read is warned about; `status` counts "today" from local midnight whatever the time
zone (finished times are stored in UTC)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from invoicesync.sandbox import Sandbox, SandboxOptions
from tests.badfiles import sample_pdf
from tests.e2e.conftest import invoicesync
from tests.harness import drop, files_in, write_config

SECRET = "s3cret-value-for-tests"


def _rewrite(config: Path, **octopia: str) -> None:
    document = yaml.safe_load(config.read_text())
    document["outboxes"][0]["octopia"].update(octopia)
    config.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.mark.parametrize("key", ["base_url", "token_url"])
def test_plain_http_to_another_machine_is_refused(tmp_path: Path, key: str) -> None:
    config = write_config(tmp_path)
    urls = {"base_url": "https://api.example.test", "token_url": "https://auth.example.test/token"}
    urls[key] = urls[key].replace("https://", "http://")
    _rewrite(config, **urls)
    result = invoicesync("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert f"outboxes[0].octopia.{key}: must start with https://" in said, said
    assert "Traceback" not in said


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:9000", "[::1]:8443"])
def test_plain_http_to_this_machine_is_allowed(tmp_path: Path, host: str) -> None:
    config = write_config(tmp_path)
    _rewrite(config, base_url=f"http://{host}", token_url=f"http://{host}/token")
    config.chmod(0o600)
    result = invoicesync("check", "-c", str(config), cwd=tmp_path)
    assert "https://" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_secret_in_a_file_everyone_may_read_is_warned_about(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.chmod(0o644)
    quiet = invoicesync("check", "-c", str(config), cwd=tmp_path)  # the built-in sandbox's: no secret
    assert quiet.returncode == 0 and "warning: outboxes" not in quiet.stdout, quiet.stdout
    with Sandbox.start(SandboxOptions(processing_seconds=0.1)) as sandbox:  # a marketplace over loopback
        _rewrite(config, base_url=sandbox.base_url, token_url=sandbox.token_url)
        config.chmod(0o644)
        _exposed_and_said(tmp_path, config)


def _exposed_and_said(tmp_path: Path, config: Path) -> None:
    checked = invoicesync("check", "-c", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "warning: outboxes[0].octopia.client_secret is written in" in checked.stdout
    assert f"chmod o-r {config}" in checked.stdout and SECRET not in checked.stdout + checked.stderr
    drop(tmp_path / "shop", "WARN0001.pdf", sample_pdf("WARN0001"))
    ran = invoicesync("once", "-c", str(config), cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-2000:]
    events = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    exposed = [event for event in events if event["event"] == "config_secret_exposed"]
    assert len(exposed) == 1 and exposed[0]["level"] == "warning"
    assert SECRET not in ran.stdout + ran.stderr

    config.chmod(0o640)  # readable by a group of the operator's choosing: not every user
    again = invoicesync("check", "-c", str(config), cwd=tmp_path)
    assert "warning: outboxes" not in again.stdout


def test_a_secret_from_the_environment_is_not_warned_about(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    _rewrite(
        config,
        client_secret="${OCTOPIA_TEST_SECRET}",
        base_url="https://api.example.test",
        token_url="https://auth.example.test/token",
    )
    config.chmod(0o644)
    checked = invoicesync("check", "-c", str(config), cwd=tmp_path, env={"OCTOPIA_TEST_SECRET": SECRET})
    assert checked.returncode == 0, checked.stderr
    assert "warning: outboxes" not in checked.stdout


@pytest.mark.parametrize("zone", ["Etc/GMT-14", "Etc/GMT+12"])  # POSIX names: GMT-14 is UTC+14
def test_status_counts_today_from_local_midnight_in_any_time_zone(tmp_path: Path, zone: str) -> None:
    config = write_config(tmp_path)
    root = tmp_path / "shop"
    drop(root, "ZONE0001.pdf", sample_pdf("ZONE0001"))
    ran = invoicesync("once", "-c", str(config), cwd=tmp_path, env={"TZ": zone})
    assert ran.returncode == 0, ran.stdout[-2000:]
    assert files_in(root, "sent") == ["ZONE0001.pdf"]
    shown = invoicesync("status", "--json", "-c", str(config), cwd=tmp_path, env={"TZ": zone})
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    row = rows[0] if isinstance(rows, list) else rows["outboxes"][0]
    assert row["sent_today"] == 1, row
