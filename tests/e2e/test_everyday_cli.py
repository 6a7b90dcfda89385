"""Issue 13 items 14 and 17: the sandbox refuses out-of-range options with a sentence, not a traceback
(the config's own validators, issue 14);
`validate --help` says what it does, and the samples validate as their README says."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import invoicesync

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--port", "99999"], "--port: must be a port number from 0 to 65535"),
        (["--error-rate", "2"], "--error-rate: must be a number from 0 to 1, not '2'"),
        (["--slow-rate", "-1"], "--slow-rate: must be a number from 0 to 1, not '-1'"),
        (["--slow-seconds", "soon"], "--slow-seconds: must be a duration such as 500ms"),
        (["--token-ttl-seconds", "0"], "--token-ttl-seconds: must be a whole number of at least 1"),
    ],
)
def test_the_sandbox_refuses_options_out_of_range(tmp_path: Path, flags: list[str], said: str) -> None:
    result = invoicesync("sandbox", *flags, cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert said in result.stderr and "Traceback" not in result.stderr


def test_validate_help_says_what_it_does(tmp_path: Path) -> None:
    result = invoicesync("validate", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "the same checks as the daemon" in result.stdout


def test_the_samples_validate_as_their_readme_says() -> None:
    samples = sorted(str(path) for path in (REPO / "samples").iterdir() if path.suffix in (".pdf", ".xml"))
    result = invoicesync("validate", *samples, cwd=REPO)
    assert result.returncode == 0, result.stdout
    assert "validate samples/*.pdf samples/*.xml" in (REPO / "samples" / "README.md").read_text()
