"""Issue 18: the inbox's plan (core): windows and when a pass is due."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from invoicesync.config import load_config
from invoicesync.errors import ConfigError
from invoicesync.inbox.plan import (
    OVERLAP,
    RETRY_SECONDS,
    WINDOW,
    Window,
    assign_names,
    next_pass_at,
    pass_window,
    split,
)
from invoicesync.marketplaces.issued import file_name

NOW = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 4), timezones=st.just(UTC)
)


def test_the_first_pass_lists_from_since_and_later_ones_from_the_last_complete_end_less_the_overlap() -> None:
    assert pass_window(date(2026, 1, 1), None, NOW) == Window(datetime(2026, 1, 1, tzinfo=UTC), NOW)
    last = datetime(2026, 12, 1, tzinfo=UTC)
    assert pass_window(date(2026, 1, 1), last, NOW) == Window(last - OVERLAP, NOW)
    assert pass_window(date(2026, 12, 2), last, NOW).start == datetime(
        2026, 12, 2, tzinfo=UTC
    )  # never before since


@given(start=instants, length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)))
def test_split_covers_the_window_in_order_without_gaps_or_overlaps(
    start: datetime, length: timedelta
) -> None:
    window = Window(start, start + length)
    pieces = split(window)
    assert pieces[0].start == window.start and pieces[-1].end == window.end
    assert all(a.end == b.start for a, b in itertools.pairwise(pieces))
    assert all(piece.end - piece.start <= WINDOW for piece in pieces)


def test_a_pass_is_due_every_after_a_clean_one_and_sooner_after_one_that_left_invoices_behind() -> None:
    started = NOW - timedelta(hours=1)
    assert next_pass_at(None, False, 21600, NOW) == NOW
    assert next_pass_at(started, True, 21600, NOW) == started + timedelta(hours=6)
    assert next_pass_at(started, False, 21600, NOW) == started + timedelta(seconds=RETRY_SECONDS)
    assert next_pass_at(started, False, 60, NOW) == started + timedelta(seconds=60)  # never later than every


def test_only_ids_safe_in_a_file_name_name_a_file() -> None:
    assert file_name("octopia", "COM20261009") == "octopia-COM20261009.pdf"
    assert file_name("MXE5BY1", "155") == "MXE5BY1-155.pdf"
    for unsafe in ("../etc", "a/b", ".hidden", "a b", "x\n", ""):
        assert file_name("octopia", unsafe) is None


def test_an_inbox_enabled_without_since_is_refused_with_its_path(tmp_path: Path) -> None:
    box = {
        "name": "shop",
        "root": str(tmp_path / "shop"),
        "create_root": True,
        "octopia": {"base_url": "sandbox", "seller_id": "1", "client_id": "c", "client_secret": "s"},
        "inbox": {"enabled": True, "every": "2h"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "outboxes": [box]}))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "outboxes[0].inbox" in str(raised.value) and "since" in str(raised.value)
    box["inbox"] = {"enabled": True, "since": "2026-01-01", "every": "2h"}
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "outboxes": [box]}))
    inbox = load_config(path).outboxes[0].inbox
    assert (inbox.since, inbox.every_seconds) == (date(2026, 1, 1), 7200.0)


@given(
    ids=st.lists(st.text(alphabet="aAbB1", min_size=1, max_size=3), min_size=1, max_size=8, unique=True),
    known_count=st.integers(min_value=0, max_value=8),
)
def test_names_never_clash_but_for_case_and_stay_what_they_were(ids: list[str], known_count: int) -> None:
    """Two invoice ids that differ only by case would be one file on a case-insensitive share."""
    proposed = {invoice_id: f"octopia-{invoice_id}.pdf" for invoice_id in ids}
    known = assign_names(dict(list(proposed.items())[:known_count]), {})
    names = assign_names(proposed, known)
    assert set(names) == set(ids)
    assert len({name.casefold() for name in names.values()}) == len(names)
    assert all(names[invoice_id] == name for invoice_id, name in known.items())
    assert assign_names(proposed, names) == names  # the next pass gives each the same name
