"""naming (core): file name -> order ID and the name the marketplace sees; names never touched.

A name already taken in `sent/` or `failed/` gets a numbered suffix before the extension
(`A1B2C3 (2).pdf`). The suffix contains a space and parentheses, which no sane order pattern
accepts, and `order_id_of` strips exactly that suffix, so a file moved back from `failed/` still
names its order.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable

DEFAULT_ORDER_PATTERN = re.compile(r"^(?P<order>[A-Za-z0-9][A-Za-z0-9_-]{3,63})$")

# Temporary and system names, from real reports (watch-folders.md §3); matched case-insensitively.
DEFAULT_IGNORE = (
    ".*",
    "~$*",
    "*.tmp",
    "*.part",
    "*.partial",
    "*.filepart",
    "*.crdownload",
    "*.writing",
    "thumbs.db",
    "desktop.ini",
    "@eadir",
)

_COPY_SUFFIX = re.compile(r" \((?P<n>[0-9]{1,6})\)$")

CONTENT_TYPES = {"pdf": "application/pdf", "xml": "application/xml", "zip": "application/zip"}


@functools.lru_cache(maxsize=16)
def _ignore_pattern(extra_patterns: tuple[str, ...]) -> re.Pattern[str]:
    """Every ignore glob in one regex (fnmatch's own translation, case-folded): a rescan of a crowded
    outbox tests each name once instead of once per pattern."""
    globs = (*DEFAULT_IGNORE, *extra_patterns)
    return re.compile("|".join(fnmatch.translate(glob.casefold()) for glob in globs))


def is_ignored(name: str, extra_patterns: Iterable[str] = ()) -> bool:
    """True for names the daemon never touches: the defaults plus the user's own patterns."""
    return _ignore_pattern(tuple(extra_patterns)).match(name.casefold()) is not None


def split_extension(name: str) -> tuple[str, str]:
    """`"A1 (2).PDF"` -> `("A1 (2)", "pdf")`; no extension gives `""`."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, ext.lower()


def strip_copy_suffix(stem: str) -> str:
    return _COPY_SUFFIX.sub("", stem)


def order_id_of(name: str, pattern: re.Pattern[str] = DEFAULT_ORDER_PATTERN) -> str | None:
    """The order a file name names, or None when the pattern does not match."""
    stem, _ = split_extension(name)
    match = pattern.search(strip_copy_suffix(stem))
    if match is None:
        return None
    order = match.groupdict().get("order")
    return order or None


def why_no_order(name: str, pattern: re.Pattern[str] = DEFAULT_ORDER_PATTERN) -> str:
    """What is wrong with `name` as an order number, in words a person can act on (the offending
    characters and where they are, or the length); for an outbox's own pattern, the pattern itself."""
    stem, _ = split_extension(name)
    stem = strip_copy_suffix(stem)
    if pattern.pattern != DEFAULT_ORDER_PATTERN.pattern:
        return f"{name!r} does not match this outbox's files.order_id: {pattern.pattern}"
    odd = {
        ch: stem.index(ch) + 1 for ch in reversed(stem) if not (ch.isascii() and (ch.isalnum() or ch in "_-"))
    }
    if odd:
        shown = ", ".join(
            f"{_character(ch)} (character {at})" for ch, at in sorted(odd.items(), key=lambda i: i[1])
        )
        return f"{name!r} holds {shown}; an order number has only letters, digits, _ and -"
    if not stem[:1].isalnum():
        return f"{name!r} starts with {stem[:1]!r}; an order number starts with a letter or a digit"
    return f"{name!r} has {len(stem)} characters before its extension; an order number has 4 to 64"


def _character(ch: str) -> str:
    names = {" ": "a space", "\t": "a tab", ".": "a dot", ",": "a comma", "(": "a bracket", ")": "a bracket"}
    return names.get(ch, f"{ch!r}" if ch.isprintable() else f"U+{ord(ch):04X}")


# A claimed name gains an 18-byte prefix in .processing/, and in failed/ a " (2)" and ".error.json" (plus
# its temp file's dot and ".tmp"); past this, a name cannot be carried through within 255 bytes.
MAX_NAME_BYTES = 230


def unusable_name(name: str) -> str | None:
    """Why a name listed in outbox/ cannot be carried through .processing/, the journal and failed/."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as surrogates
        return "the name is not valid UTF-8 (saved by a program using another character set)"
    if size > MAX_NAME_BYTES:
        return f"the name is longer than {MAX_NAME_BYTES} bytes"
    return None


SAFE_STEM_BYTES = 120  # what is kept of an unusable name's stem in its safe name


def shown_name(name: str) -> str:
    """A listed name as text a report can hold: bytes that are not UTF-8 written as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def safe_name(name: str) -> str:
    """The name an unusable file is carried through under: `shown_name`, its stem cut to SAFE_STEM_BYTES
    (on a character boundary), its extension kept, so failed/ shows what it was."""
    shown = shown_name(name)
    stem, ext = split_extension(shown)
    tail = shown[len(stem) :] if ext and len(ext.encode()) <= 16 else ""
    stem = shown[: len(shown) - len(tail)] if tail else shown
    cut = stem.encode("utf-8")[:SAFE_STEM_BYTES].decode("utf-8", "ignore")
    return f"{cut}{'…' if cut != stem else ''}{tail}"


def upload_name(order_id: str, ext: str) -> str:
    """The name the marketplace sees: always `<order>.<ext>`."""
    return f"{order_id}.{ext.lower()}"


def numbered(name: str, number: int) -> str:
    """`numbered("A1.pdf", 2)` -> `"A1 (2).pdf"`; number 1 is the name itself."""
    if number <= 1:
        return name
    stem, ext = split_extension(name)
    base = strip_copy_suffix(stem)
    original_ext = name[len(stem) + 1 :] if ext else ""
    return f"{base} ({number}).{original_ext}" if ext else f"{base} ({number})"
