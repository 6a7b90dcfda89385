"""Issue 13 items 14 and 17: the sandbox refuses out-of-range options with a sentence, not a traceback
(the config's own validators, issue 14);
`validate --help` says what it does, and the samples validate as their README says."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.badfiles import sample_pdf, self_drawing_form_pdf
from tests.e2e.conftest import invoicesync
from tests.harness import write_config

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


def test_validate_judges_in_a_checker_so_a_hostile_pdf_is_cut_off(tmp_path: Path) -> None:
    """Issue 17: PDFium is native code, so `validate` judges as the daemon does, in a checker process: a
    PDF that sends PDFium into endless work gets TooLarge at the outbox's check_seconds, the next file
    its verdict, and the command neither hangs nor grows."""
    config = write_config(tmp_path, outbox_overrides={"files": {"check_seconds": 2}})
    hostile, good = tmp_path / "A1B2C3.pdf", tmp_path / "A1B2C4.pdf"
    hostile.write_bytes(self_drawing_form_pdf("A1B2C3"))
    good.write_bytes(sample_pdf("A1B2C4"))
    result = invoicesync("validate", "-c", str(config), str(hostile), str(good), cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"{hostile}: TooLarge: The file is too large: checking it took longer than 2 s.",
        f"{good}: ok (order A1B2C4)",
    ]
    assert "Traceback" not in result.stderr
