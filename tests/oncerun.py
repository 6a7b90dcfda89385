"""`invoicesync once` as a real subprocess against a sandbox the test holds (so it can ask what was sent).

```python
with start_sandbox() as sandbox:
    config = sandbox_config(tmp_path, sandbox)
    result = run_once(config, cwd=tmp_path)
    events(result.stderr)  # the daemon's JSON log lines, as dicts
    sandbox.received()  # every file the marketplace got
```
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from invoicesync.sandbox import Sandbox, SandboxOptions
from tests.harness import write_config

CREDENTIALS = {"client_id": "test-client", "client_secret": "s3cret-value-for-tests", "seller_id": "98979"}
ONCE_TIMEOUT_SECONDS = 60  # a daemon that blocks (on a FIFO, say) fails the test instead of hanging it


def start_sandbox() -> Sandbox:
    return Sandbox.start(SandboxOptions(processing_seconds=0.1, **CREDENTIALS))


def sandbox_config(tmp_path: Path, sandbox: Sandbox, **overrides: dict[str, Any]) -> Path:
    """A config whose one outbox, `shop` under tmp_path, talks to `sandbox`; short settle and empty
    windows (empty_after below settle_seconds, so `once` fails empty files before it goes idle)."""
    sections: dict[str, dict[str, Any]] = {
        "octopia": {"base_url": sandbox.base_url, "token_url": sandbox.token_url},
        "watch": {"settle_seconds": 0.2, "poll_seconds": 0.05},
        "files": {"empty_after": "0.1s"},
    }
    for key, value in overrides.items():
        sections[key] = {**sections.get(key, {}), **value}
    return write_config(tmp_path, outbox_overrides=sections)


def run_once(
    config: Path, *, cwd: Path, wrapper: Sequence[str] = (), **options: Any
) -> subprocess.CompletedProcess[str]:
    """`python -m invoicesync once -c config`, run through `wrapper` (e.g. setpriv ...) if given."""
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "invoicesync", "once", "-c", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=ONCE_TIMEOUT_SECONDS,
        check=False,
        **options,
    )


def events(output: str) -> list[dict[str, Any]]:
    """The JSON log lines of a run (the summary line and anything else are left out)."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found
