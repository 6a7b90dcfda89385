"""cli (shell): subcommands, exit codes, one clear sentence per error (PRODUCT §5).

Exit 0 when the job was done (files in failed/ are a normal outcome), 2 for a configuration error,
1 when the service could not do its job. An `InvoicesyncError` is printed as its sentence with no
traceback; anything else gets one line, the traceback only at debug level.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType

import structlog

from invoicesync import __version__
from invoicesync.config import Config, default_config_path, load_config
from invoicesync.errors import ConfigError, InvoicesyncError
from invoicesync.logs import configure_logging

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invoicesync", description="Deliver invoice files to marketplace orders."
    )
    parser.add_argument("--version", action="version", version=f"invoicesync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "-c",
            "--config",
            type=Path,
            help="configuration file (default: $INVOICESYNC_CONFIG, then /etc/invoicesync/config.yaml)",
        )
        return sub

    with_config("run", "run the daemon in the foreground (SIGTERM stops, SIGHUP reloads)")
    with_config("once", "process what is in the outboxes now, wait for its imports, exit")
    check = with_config("check", "check configuration, folders, filesystems and permissions")
    check.add_argument("--online", action="store_true", help="also get a marketplace token")
    status = with_config("status", "show each outbox: waiting, in flight, sent and failed today")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    validate = commands.add_parser(
        "validate", help="the verdict each file would get, without sending anything"
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.add_argument(
        "--order-id",
        help="regular expression with a group named `order` (default: the "
        "standard pattern, or the first outbox's with -c)",
    )
    validate.add_argument(
        "-c", "--config", type=Path, help="take the order pattern and limits from this file"
    )
    validate.add_argument("--json", action="store_true", help="one JSON object per line")

    sandbox = commands.add_parser("sandbox", help="run the built-in Octopia simulator alone")
    sandbox.add_argument(
        "--port", type=int, default=8400, help="loopback port (default 8400; 0 = any free port)"
    )
    sandbox.add_argument("-c", "--config", type=Path, help="take the `sandbox` section from this file")
    sandbox.add_argument("--orders", help="comma-separated order IDs it knows (default: all)")
    sandbox.add_argument("--processing-seconds", type=float)
    sandbox.add_argument("--error-rate", type=float, help="share of calls answered 500/503")
    sandbox.add_argument("--rate-limit-rate", type=float, help="share of calls answered 429 + Retry-After")
    sandbox.add_argument("--retry-after-seconds", type=float, help="the Retry-After of those 429 answers")
    sandbox.add_argument("--slow-rate", type=float, help="share of answers slowed by --slow-seconds")
    sandbox.add_argument("--slow-seconds", type=float)
    sandbox.add_argument(
        "--drop-after-accept-rate", type=float, help="share of uploads accepted, then dropped"
    )
    sandbox.add_argument(
        "--list-delay-seconds", type=float, help="a new import is listed only this long after it began"
    )
    sandbox.add_argument("--token-ttl-seconds", type=int)
    sandbox.add_argument("--refuse-tokens", action="store_true", help="refuse every token request")
    sandbox.add_argument("--seed", type=int, help="seed the fault draws, so a run can be repeated")
    return parser


def _load(path: Path | None) -> Config:
    return load_config(path or default_config_path(os.environ))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except InvoicesyncError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    from invoicesync import commands  # the commands pull in the whole service: keep --help fast

    if args.command == "validate":
        return commands.validate(args)
    if args.command == "sandbox":
        configure_logging(format="auto", level="info")
        return commands.sandbox(args, _load(args.config) if args.config else None)
    config = _load(args.config)
    configure_logging(format=config.log.format, level=config.log.level)
    if args.command == "check":
        return commands.check(config, online=args.online)
    if args.command == "status":
        return commands.status(config, as_json=args.json)
    return _serve(config, args)


def _serve(config: Config, args: argparse.Namespace) -> int:
    from invoicesync.service import Service

    once = args.command == "once"
    progress = _Progress() if once and sys.stderr.isatty() else None
    service = Service(config, once=once, on_progress=progress)

    def stop(signum: int, frame: FrameType | None) -> None:
        service.request_stop()

    def reload(signum: int, frame: FrameType | None) -> None:
        service.request_reload()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    try:
        tally = service.run(reload_config=lambda: _load(args.config))
    except InvoicesyncError:
        raise
    except Exception as exc:
        structlog.get_logger("invoicesync").exception("service_failed")
        print(f"invoicesync stopped: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if progress is not None:
        progress.end()
    if once:
        print(f"sent={tally['sent']} failed={tally['failed']} waiting={tally['waiting']}")
        if service.blocked_outboxes():
            return EXIT_FAILED
    return EXIT_OK


class _Progress:
    """One line on the terminal, rewritten in place while `once` works."""

    def __init__(self) -> None:
        self._last = ""

    def __call__(self, tally: dict[str, int]) -> None:
        line = f"in progress={tally['waiting']} sent={tally['sent']} failed={tally['failed']}"
        if line != self._last:
            sys.stderr.write(f"\r{line}\x1b[K")
            sys.stderr.flush()
            self._last = line

    def end(self) -> None:
        if self._last:
            sys.stderr.write("\n")


def _timestamp(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError("--order-id", [f"not a regular expression: {exc}"]) from None
    if "order" not in compiled.groupindex:
        raise ConfigError("--order-id", ["needs a group named `order`, e.g. '^(?P<order>[A-Z0-9]+)$'"])
    return compiled
