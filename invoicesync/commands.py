"""commands (shell): `check`, `status`, `validate` and `sandbox`, the subcommands beside the daemon.

Each takes parsed arguments and settings and returns an exit code; errors are raised as
`InvoicesyncError` so the CLI prints one sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import BaseModel, ValidationError

from invoicesync import archive
from invoicesync.checks.content import Rules, kind_of, self_test
from invoicesync.checks.examine import Examined
from invoicesync.checks.pool import Checkers
from invoicesync.config import DEFAULT_CHECK_SECONDS, Config, FaultSettings, SandboxSettings
from invoicesync.errors import ConfigError, InvoicesyncError, ServiceError
from invoicesync.journal import journal_problem, orphans_problem
from invoicesync.model import FileError
from invoicesync.naming import DEFAULT_ORDER_PATTERN
from invoicesync.outbox import Folders, folder_problem
from invoicesync.sandbox import Sandbox
from invoicesync.statedir import JOURNAL_NAME
from invoicesync.statusview import status_rows
from invoicesync.watching import filesystem_type, is_network
from invoicesync.wiring import make_marketplace, rules_of, sandbox_options

EXIT_OK, EXIT_FAILED = 0, 1


def check(config: Config, *, online: bool) -> int:
    """Configuration (already loaded), folders, filesystems, permissions, the XSDs; `online`: a token."""
    problems: list[str] = []
    notes = [f"warning: {warning}" for warning in config.warnings]
    try:
        self_test()
    except Exception as exc:
        problems.append(f"UBL schemas: {exc}")
    state_dir = config.state_dir
    if state_dir.exists() and not state_dir.is_dir():
        problems.append(f"state_dir {state_dir} is not a folder")
    elif state_dir.exists() and not os.access(state_dir, os.W_OK):
        problems.append(f"state_dir {state_dir} is not writable")
    journal_path = state_dir / JOURNAL_NAME
    processing = [box.root / ".processing" for box in config.outboxes]
    trouble = journal_problem(journal_path) or orphans_problem(journal_path, processing)
    if trouble is not None:
        problems.append(trouble)
    for box in config.outboxes:
        folders = Folders(box.root, "check")
        if not box.root.exists():
            if box.create_root:
                notes.append(f"outbox {box.name!r}: root {box.root} does not exist yet; it is made at start")
            else:
                problems.append(
                    f"outbox {box.name!r}: root {box.root} does not exist: is the share mounted, or is "
                    "`root` mistyped? It is never created unless the outbox says create_root: true"
                )
            continue
        if not box.root.is_dir():
            problems.append(f"outbox {box.name!r}: root {box.root} is not a folder")
            continue
        if not os.access(box.root, os.W_OK | os.X_OK):
            problems.append(f"outbox {box.name!r}: root {box.root} is not writable")
        for folder in folders.folders:  # a link is refused, and each folder must take files
            trouble = folder_problem(folder)
            if trouble is not None:
                problems.append(f"outbox {box.name!r}: {trouble}")
        fs_type = filesystem_type(box.root)
        if is_network(fs_type):
            notes.append(f"outbox {box.name!r}: {box.root} is on {fs_type}; watching by polling")
            if box.watch.settle_seconds < 10:
                notes.append(
                    f"warning: outbox {box.name!r}: settle_seconds {box.watch.settle_seconds:g} is short "
                    "for a "
                    "network share (attribute caches hold sizes for seconds); 10 or more is safer"
                )
        devices = {
            folder.stat().st_dev
            for folder in (folders.outbox, folders.sent, folders.failed)
            if folder.exists()
        }
        if len(devices) > 1:
            problems.append(f"outbox {box.name!r}: outbox/, sent/ and failed/ are not on one filesystem")
    if online and not problems:
        sandbox = Sandbox.start(sandbox_options(config)) if config.uses_sandbox else None
        try:
            for box in config.outboxes:
                marketplace = make_marketplace(box, sandbox)
                try:
                    marketplace.check_online()
                    where = "the sandbox" if box.uses_sandbox else box.base_url
                    what = "a signed read answered by" if box.kaufland is not None else "token obtained from"
                    notes.append(f"outbox {box.name!r}: {what} {where}")
                except InvoicesyncError as exc:
                    problems.append(f"outbox {box.name!r}: {exc}")
                finally:
                    marketplace.close()
        finally:
            if sandbox is not None:
                sandbox.stop()
    for note in notes:
        print(note)
    if problems:
        print(f"{config.source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{config.source}: OK ({len(config.outboxes)} outbox{'es' if len(config.outboxes) != 1 else ''})")
    return EXIT_OK


def status(config: Config, *, as_json: bool) -> int:
    """Per outbox: files waiting, in flight (the oldest since when), sent and failed today, and, while
    a daemon runs, whether its uploads are paused or the outbox is stopped, with the reason."""
    damaged = journal_problem(config.state_dir / JOURNAL_NAME)
    if damaged is not None:
        print(damaged, file=sys.stderr)
        return EXIT_FAILED
    running, rows = status_rows(config)
    if as_json:
        print(json.dumps({"daemon_running": running, "outboxes": rows}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not running:
        print("no daemon is running on this state directory")
    for row in rows:
        since = f" (oldest since {row['in_flight_since']})" if row["in_flight_since"] else ""
        print(
            f"{row['outbox']}: waiting={row['waiting']} in_flight={row['in_flight']}{since} "
            f"sent_today={row['sent_today']} failed_today={row['failed_today']}"
        )
        if row["why_waiting"]:
            print(f"  why: {'; '.join(row['why_waiting'])}")
        if row["paused"]:
            print(f"  PAUSED: {row['paused']}")
        if row["problem"]:
            print(f"  STOPPED: {row['problem']}")
        if row["last_error"]:
            print(f"  last error: {row['last_error']}")
        if row.get("inbox"):
            print(f"  inbox: {_inbox_line(row['inbox'])}")
        for former, count in row["former_roots"].items():
            files = "1 file" if count == 1 else f"{count} files"
            print(f"  NOTE: {files} in flight under the former root {former}: finished there (root changed)")
    return EXIT_OK


def inbox(config: Config, *, since: date | None, refetch: str | None, only: str | None) -> int:
    """One inbox pass for each outbox with `inbox.enabled` (or only `only`): one summary line each; exit 1
    when a pass left invoices unfetched or ended on an error (said below its line)."""
    from invoicesync.inbox.runner import run_once  # only this command and the daemon need it

    boxes = [box for box in config.outboxes if (box.name == only if only else box.inbox.enabled)]
    source = str(config.source)
    if only and not boxes:
        raise ConfigError(source, [f"no outbox is named {only!r}"])
    if not boxes:
        raise ConfigError(
            source,
            ["no outbox has its inbox enabled (inbox: {enabled: true, since: 2026-01-01} in an outbox)"],
        )
    if not boxes[0].inbox.enabled:
        raise ConfigError(
            source, [f"outboxes[{boxes[0].name}].inbox.enabled: the inbox of this outbox is off"]
        )
    config.state_dir.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox.start(sandbox_options(config)) if any(box.uses_sandbox for box in boxes) else None
    log = structlog.get_logger("invoicesync")
    incomplete = 0
    try:
        for box in boxes:
            result = run_once(
                box, config.state_dir, sandbox, log.bind(outbox=box.name), since=since, refetch=refetch
            )
            if result is None:
                raise ServiceError(
                    "Another inbox pass is running on this state directory (the daemon's); "
                    "try again when it ends."
                )
            counts = result.counts
            print(
                f"{box.name}: found={counts.found} new={counts.new} fetched={counts.fetched} "
                f"failed={counts.failed} requests={counts.requests} retries={counts.retries} "
                f"{'complete' if result.complete else 'INCOMPLETE'}",
                flush=True,
            )
            if result.error:
                print(f"  error: {result.error}", flush=True)
            incomplete += not result.complete
    finally:
        if sandbox is not None:
            sandbox.stop()
    return EXIT_FAILED if incomplete else EXIT_OK


def _inbox_line(inbox: dict[str, Any]) -> str:
    held = f"{inbox['stored']} invoice{'' if inbox['stored'] == 1 else 's'} fetched so far"
    last = inbox.get("last_pass")
    if not last:
        return f"no pass yet; {held}"
    state = "complete" if last["complete"] else "incomplete" if last["ended_at"] else "running or cut short"
    line = (
        f"last pass {last['started_at']}: found={last['found']} new={last['new']} fetched={last['fetched']} "
        f"failed={last['failed']} ({state}); {held}"
    )
    return f"{line}; error: {last['error']}" if last.get("error") else line


def validate(args: argparse.Namespace) -> int:
    """The verdict each file would get in an outbox, without a journal or a marketplace: one line per
    file (and per entry of a ZIP, which the daemon judges one by one), or one JSON object per line. Files
    are judged by a checker process, as the daemon judges them: a hostile file is cut off at the outbox's
    `check_seconds` and cannot crash or exhaust this command."""
    from invoicesync.config import load_config

    pattern = DEFAULT_ORDER_PATTERN
    rules = Rules()
    seconds = DEFAULT_CHECK_SECONDS
    if args.config is not None:
        box = load_config(args.config).outboxes[0]
        pattern = box.files.order_id
        rules = rules_of(box)
        seconds = box.files.check_seconds
    if args.order_id:
        pattern = _order_pattern(args.order_id)
    failed = 0
    quiet = structlog.wrap_logger(structlog.ReturnLogger())  # a checker's start and end are not verdicts
    checkers = Checkers(workers=1, time_limit_seconds=seconds, log=quiet)
    try:
        for path in args.files:
            for verdict in _verdicts(Judge(checkers, pattern, rules), path):
                failed += verdict["verdict"] != "ok"
                if args.json:
                    print(json.dumps(verdict, ensure_ascii=False), flush=True)
                else:
                    print(_verdict_line(verdict), flush=True)
    finally:
        checkers.close()
    return EXIT_FAILED if failed else EXIT_OK


@dataclass(frozen=True)
class Judge:
    """How `validate` judges one file: exactly as intake does (`examine`, in a checker process)."""

    checkers: Checkers
    pattern: re.Pattern[str]
    rules: Rules

    def __call__(self, path: Path, name: str, *, entry: bool) -> Examined:
        future = self.checkers.submit(path, name, pattern=self.pattern, rules=self.rules, entry=entry)
        return future.result()


def _verdict_line(verdict: dict[str, Any]) -> str:
    shown = verdict["file"] if verdict["origin"] is None else f"{verdict['origin']}: {verdict['file']}"
    if verdict["verdict"] == "failed":
        return f"{shown}: {verdict['code']}: {verdict['message']}"
    if verdict.get("entries") is not None:
        count = verdict["entries"]
        return f"{shown}: ok (a safe ZIP of {count} file{'' if count == 1 else 's'}, each judged below)"
    return f"{shown}: ok (order {verdict['order_id']})"


def _verdicts(judge: Judge, path: Path) -> list[dict[str, Any]]:
    """The file's verdict; for a safe ZIP, then one per entry, unpacked as the daemon does."""
    verdict, error = _verdict(judge, path, str(path), origin=None)
    if error is not None or kind_of(path.name) != "zip":
        return [verdict]
    with tempfile.TemporaryDirectory(prefix="invoicesync-validate-") as folder:
        unpacked = archive.unpack(path, Path(folder), judge.rules)
        if isinstance(unpacked, FileError):
            return [_failed(verdict, unpacked)]
        rows = [{**verdict, "entries": len(unpacked.entries)}]
        for entry in unpacked.entries:
            name = os.path.basename(entry.name.replace("\\", "/"))  # as intake names an entry
            rows.append(_verdict(judge, entry.path, name, origin=str(path))[0])
    return rows


def _verdict(
    judge: Judge, path: Path, name: str, *, origin: str | None
) -> tuple[dict[str, Any], FileError | None]:
    found = judge(path, Path(name).name, entry=origin is not None)
    base: dict[str, Any] = {"file": name, "origin": origin, "order_id": found.order_id}
    if found.size is not None:
        base["size"] = found.size
    if found.sha256 is not None:
        base["sha256"] = found.sha256
    if found.error is None:
        return {**base, "verdict": "ok"}, None
    return _failed(base, found.error), found.error


def _failed(base: dict[str, Any], error: FileError) -> dict[str, Any]:
    return {
        **base,
        "verdict": "failed",
        "code": error.code,
        "message": error.message,
        "hint": error.hint,
        "detail": error.detail,
    }


# each is the config's `sandbox.faults` key of that name (or `sandbox.processing_seconds`)
SANDBOX_FLAGS = (
    "processing_seconds",
    *(name for name in FaultSettings.model_fields if name != "refuse_tokens"),
)


def _sandbox_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, checked by the very validators of the config's `sandbox` section (one rule, one
    sentence, in the file and on the command line); ConfigError lists every flag that is wrong."""
    given = {flag: getattr(args, flag) for flag in SANDBOX_FLAGS if getattr(args, flag) is not None}
    problems = []
    values: dict[str, Any] = {}
    for flag, text in given.items():
        value = yaml.safe_load(text) if isinstance(text, str) else text  # "0.5" -> 0.5, "2s" stays text
        model: type[BaseModel] = SandboxSettings if flag == "processing_seconds" else FaultSettings
        try:
            values[flag] = getattr(model.model_validate({flag: value}), flag)
        except ValidationError as error:
            reason = error.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            problems.append(f"--{flag.replace('_', '-')}: {reason}, not {text!r}")
    if problems:
        raise ConfigError("invoicesync sandbox", problems)
    return values


def sandbox(args: argparse.Namespace, config: Config | None) -> int:
    from dataclasses import replace

    from invoicesync.sandbox import SandboxOptions

    options = sandbox_options(config) if config is not None else SandboxOptions()
    changes: dict[str, Any] = {}
    if args.orders:
        changes["orders"] = frozenset(order.strip() for order in args.orders.split(",") if order.strip())
    changes.update(_sandbox_flags(args))
    if args.refuse_tokens:
        changes["refuse_tokens"] = True
    options = replace(options, **changes)
    try:
        server = Sandbox.start(options, port=args.port)
    except OSError as exc:
        raise ServiceError(f"The sandbox cannot listen on 127.0.0.1:{args.port}: {exc.strerror}.") from None
    if args.marketplace == "kaufland":  # the base_url a Kaufland outbox names, first
        print(
            f"sandbox listening: base_url={server.kaufland_url} kaufland_url={server.kaufland_url} "
            f"token_url={server.token_url}",
            flush=True,
        )
    else:
        print(
            f"sandbox listening: base_url={server.base_url} token_url={server.token_url} "
            f"kaufland_url={server.kaufland_url}",
            flush=True,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return EXIT_OK


def _order_pattern(pattern: str) -> re.Pattern[str]:
    """`validate --order-id`: a regular expression with a group named `order`."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError("--order-id", [f"not a regular expression: {exc}"]) from None
    if "order" not in compiled.groupindex:
        raise ConfigError("--order-id", ["needs a group named `order`, e.g. '^(?P<order>[A-Z0-9]+)$'"])
    return compiled
