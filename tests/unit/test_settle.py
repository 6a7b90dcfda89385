from __future__ import annotations

from invoicesync.settle import NOTHING_SEEN, Kind, Stat, settle

KW = {"settle_seconds": 5.0, "empty_after_seconds": 3600.0}


def test_file_still_growing_is_not_ready() -> None:
    s = settle(NOTHING_SEEN, {"A1B2C3.pdf": Stat(size=10, mtime_ns=1)}, now=0.0, **KW)
    s = settle(s.seen, {"A1B2C3.pdf": Stat(size=20, mtime_ns=2)}, now=6.0, **KW)
    assert s.ready == []
    assert s.next_check_at == 11.0


def test_unchanged_file_is_ready_after_the_window() -> None:
    s = settle(NOTHING_SEEN, {"A.pdf": Stat(10, 1)}, now=0.0, **KW)
    assert s.ready == []
    s = settle(s.seen, {"A.pdf": Stat(10, 1)}, now=4.9, **KW)
    assert s.ready == []
    s = settle(s.seen, {"A.pdf": Stat(10, 1)}, now=5.0, **KW)
    assert s.ready == ["A.pdf"]


def test_old_mtime_does_not_shortcut_the_window() -> None:
    s = settle(NOTHING_SEEN, {"A.pdf": Stat(10, mtime_ns=1)}, now=1000.0, **KW)
    assert s.ready == []


def test_empty_file_waits_then_expires() -> None:
    s = settle(NOTHING_SEEN, {"A.pdf": Stat(0, 1)}, now=0.0, **KW)
    s = settle(s.seen, {"A.pdf": Stat(0, 1)}, now=100.0, **KW)
    assert s.ready == [] and s.empty_expired == []
    s = settle(s.seen, {"A.pdf": Stat(0, 1)}, now=3600.0, **KW)
    assert s.empty_expired == ["A.pdf"]


def test_fifo_settles_like_a_file_though_empty() -> None:
    s = settle(NOTHING_SEEN, {"A.pdf": Stat(0, 1, kind=Kind.OTHER)}, now=0.0, **KW)
    s = settle(s.seen, {"A.pdf": Stat(0, 1, kind=Kind.OTHER)}, now=5.0, **KW)
    assert s.ready == ["A.pdf"]


def test_vanished_files_are_forgotten_and_order_is_oldest_first() -> None:
    s = settle(NOTHING_SEEN, {"B.pdf": Stat(1, 1), "GONE.pdf": Stat(1, 1)}, now=0.0, **KW)
    s = settle(s.seen, {"B.pdf": Stat(1, 1), "A.pdf": Stat(1, 1)}, now=1.0, **KW)
    assert set(s.seen) == {"A.pdf", "B.pdf"}
    s = settle(s.seen, {"B.pdf": Stat(1, 1), "A.pdf": Stat(1, 1)}, now=7.0, **KW)
    assert s.ready == ["B.pdf", "A.pdf"]
