"""config (edge): YAML file -> frozen, validated settings, with every problem reported at once.

The file is read with a SafeLoader that refuses duplicate keys, `${VAR}` is expanded after parsing (in
strings only, unset = problem), then pydantic checks the shape. Each problem is one line,
`outboxes[0].batch.max_files: must be a whole number from 1 to 1000, got "many"`; values are echoed only
for plainly non-secret keys (numbers, sizes, durations, choices), and then as written in the file, before
`${VAR}` expansion. Relative paths resolve against the working directory given. pydantic stays here.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import stat
import urllib.parse
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.fields import FieldInfo

from invoicesync.checks.content import DEFAULT_MAX_BYTES
from invoicesync.errors import ConfigError, OutboxBlocked
from invoicesync.naming import DEFAULT_ORDER_PATTERN

DEFAULT_CHECK_SECONDS = 60.0  # one file's content check, at most (files.check_seconds)

DEFAULT_CONFIG_PATH = Path("/etc/invoicesync/config.yaml")
SANDBOX = "sandbox"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OUTBOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_DURATION_HELP = "a duration such as 500ms, 45s, 30m, 1h or 2d, or a number of seconds"
_SIZE_HELP = "a size such as 512KB, 20MB, 1GB or 20MiB, or a number of bytes"


# -- plain parsers, also used by command-line flags ------------------------------------------------


def parse_duration(text: str | float) -> float:
    """`"1h"`, `"30m"`, `"45s"`, `"2d"`, `"500ms"`, `"1h30m"` or a number of seconds -> seconds."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"must be {_DURATION_HELP}")
    if not isinstance(text, str) or re.fullmatch(r"\d+(?:\.\d+)?", text.strip()):
        seconds = float(text)
    elif re.fullmatch(rf"(?:{_DURATION_PART.pattern})+", text.strip()):
        parts = _DURATION_PART.findall(text.strip())
        seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    else:
        raise ValueError(f"must be {_DURATION_HELP}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be {_DURATION_HELP}, not negative")
    return seconds


def parse_size(text: str | int) -> int:
    """`"20MB"`, `"512KB"`, `"1GB"` (decimal), `"20MiB"` (binary) or a number of bytes -> bytes."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError(f"must be {_SIZE_HELP}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"must be {_SIZE_HELP}, not negative")
        return text
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"must be {_SIZE_HELP}")
    return int(Decimal(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$INVOICESYNC_CONFIG`, else `/etc/invoicesync/config.yaml`."""
    env = os.environ if environ is None else environ
    return Path(env["INVOICESYNC_CONFIG"]) if env.get("INVOICESYNC_CONFIG") else DEFAULT_CONFIG_PATH


# -- field validators (pydantic BeforeValidators: raise ValueError with the sentence to show) -------


def _duration(*, positive: bool) -> BeforeValidator:
    def check(value: Any) -> float:
        if not isinstance(value, str | int | float):
            raise ValueError(f"must be {_DURATION_HELP}")
        seconds = parse_duration(value)
        if positive and seconds == 0:
            raise ValueError("must be longer than 0 seconds")
        return seconds

    return BeforeValidator(check)


def _size(value: Any) -> int:
    size = parse_size(value)
    if size <= 0:
        raise ValueError("must be more than 0 bytes")
    return size


def _whole_number(low: int, high: int | None = None) -> BeforeValidator:
    wanted = (
        f"a whole number from {low} to {high}" if high is not None else f"a whole number of at least {low}"
    )

    def check(value: Any) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            raise ValueError(f"must be {wanted}")
        return value

    return BeforeValidator(check)


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError("must be a number from 0 to 1")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text (put it in quotes)")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _seller_id(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError('must be quoted, e.g. seller_id: "98979" (YAML reads bare digits as a number)')
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]+", value):
        raise ValueError('must be the numeric seller ID in quotes, e.g. "98979"')
    return value


def _url(value: Any, *, sandbox_allowed: bool) -> str:
    if isinstance(value, str) and sandbox_allowed and value == SANDBOX:
        return value
    text = _text(value).strip()
    if not re.fullmatch(r"https?://[^/\s?#]+(?:[/?#]\S*)?", text):
        raise ValueError(
            'must be "sandbox" or an http(s) URL' if sandbox_allowed else "must be an http(s) URL"
        )
    if text.lower().startswith("http://") and not is_loopback_url(text):
        raise ValueError(
            "must start with https:// (plain http:// would send the secret and the invoices unencrypted; "
            "it is allowed only for this machine, 127.0.0.1 or localhost)"
        )
    return text.rstrip("/")


def is_loopback_url(url: str) -> bool:
    """True when `url` names this machine (localhost, 127.0.0.0/8, ::1): nothing leaves it."""
    try:
        host = urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _absolute_path(value: Any, info: ValidationInfo) -> Path:
    text = _text(value)
    cwd = (info.context or {}).get("cwd") or Path.cwd()
    return Path(os.path.abspath(Path(cwd) / text))


def _read_secret_file(path: Path) -> str:
    """The secret in `path`, trailing newline stripped; ValueError naming the path, never the content."""
    try:
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {path}: not UTF-8 text") from None
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


def _readable_secret_file(path: Path) -> Path:
    _read_secret_file(path)
    return path


def _order_pattern(value: Any) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a regular expression in quotes")
    try:
        pattern = re.compile(value)
    except re.error as error:
        raise ValueError(f"is not a valid regular expression: {error}") from None
    if "order" not in pattern.groupindex:
        raise ValueError("must contain a named group `order`, as in (?P<order>...)")
    return pattern


def _globs(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(item, str) and item.strip() for item in value):
        return tuple(value)
    if value is None:
        return value
    raise ValueError("must be a list of non-empty texts")


def _orders(value: Any) -> Any:
    if value == "all" or value is None:
        return None
    if isinstance(value, list):
        return value
    raise ValueError('must be "all" or a list of order IDs')


def _not_empty(value: Any) -> Any:
    # Field(min_length=1) would also fire when every item is invalid (pydantic counts valid items).
    if value == [] or value is None:
        raise ValueError("must list at least one outbox")
    return value


def _outbox_name(value: Any) -> str:
    if not isinstance(value, str) or not _OUTBOX_NAME.fullmatch(value):
        raise ValueError("must be 1 to 64 letters, digits, _ or -, starting with a letter or digit")
    return value


Text = Annotated[str, BeforeValidator(_text)]
AbsolutePath = Annotated[Path, BeforeValidator(_absolute_path)]
SecretFile = Annotated[Path, BeforeValidator(_absolute_path), AfterValidator(_readable_secret_file)]
Seconds = Annotated[float, _duration(positive=False)]
PositiveSeconds = Annotated[float, _duration(positive=True)]
Size = Annotated[int, BeforeValidator(_size)]
Rate = Annotated[float, BeforeValidator(_rate)]
SellerId = Annotated[str, BeforeValidator(_seller_id)]
OrderPattern = Annotated[re.Pattern[str], PlainValidator(_order_pattern)]
Globs = Annotated[tuple[str, ...], BeforeValidator(_globs)]


# -- the settings -----------------------------------------------------------------------------------


class _Settings(BaseModel):
    # validate_by_name: code and tests may build settings with attribute names (give_up_after_seconds=).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, validate_by_name=True)


class LogSettings(_Settings):
    format: Literal["auto", "console", "json"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


def _credentials_problem(octopia: Mapping[str, Any]) -> str | None:
    problems = []
    if (octopia.get("client_secret") is None) == (octopia.get("client_secret_file") is None):
        problems.append("give exactly one of client_secret or client_secret_file")
    if octopia.get("token_url") is None and octopia.get("base_url") not in (SANDBOX, None):
        problems.append("token_url is required unless base_url is sandbox")
    return "; ".join(problems) or None


class OctopiaSettings(_Settings):
    base_url: Annotated[str, BeforeValidator(lambda value: _url(value, sandbox_allowed=True))]
    token_url: Annotated[str, BeforeValidator(lambda value: _url(value, sandbox_allowed=False))] | None = None
    seller_id: SellerId
    client_id: Text
    client_secret: Annotated[SecretStr, BeforeValidator(_text)] | None = None
    client_secret_file: SecretFile | None = None

    @model_validator(mode="after")
    def _complete(self) -> OctopiaSettings:
        problem = _credentials_problem(dict(self))  # also in `_cross_check`, beside the section's others
        if problem is not None:
            raise ValueError(problem)
        return self

    def read_secret(self) -> str:
        """The client secret; a secret file is read again on each call, so a fixed file needs no restart.

        Raises OutboxBlocked (naming the file, never its content) when the file cannot be read.
        """
        return _secret(self.client_secret, self.client_secret_file, "client secret")


def _secret(value: SecretStr | None, path: Path | None, what: str) -> str:
    """A secret given in the file, or read from its file now (each call: a fixed file needs no restart)."""
    if value is not None:
        return value.get_secret_value()
    if path is None:  # excluded by validation
        raise OutboxBlocked(f"No {what} is configured.")
    try:
        return _read_secret_file(path)
    except ValueError as error:
        raise OutboxBlocked(
            f"The {what} file is unusable ({error}). Fix it; uploads resume by themselves."
        ) from None


class KauflandSettings(_Settings):
    base_url: Annotated[str, BeforeValidator(lambda value: _url(value, sandbox_allowed=True))]
    client_key: Text
    secret_key: Annotated[SecretStr, BeforeValidator(_text)] | None = None
    secret_key_file: SecretFile | None = None
    user_agent: Text = "invoicesync"
    corrections: Literal["replace", "keep"] = "replace"
    max_requests_per_second: Annotated[int, _whole_number(1, 111)] = (
        100  # Kaufland: 111 per seller, all calls
    )

    @model_validator(mode="after")
    def _complete(self) -> KauflandSettings:
        if (self.secret_key is None) == (self.secret_key_file is None):
            raise ValueError("give exactly one of secret_key or secret_key_file")
        return self

    def read_secret(self) -> str:
        """The secret key; a secret file is read again on each call (see `_secret`)."""
        return _secret(self.secret_key, self.secret_key_file, "Kaufland secret key")


class FileSettings(_Settings):
    order_id: OrderPattern = DEFAULT_ORDER_PATTERN
    max_bytes: Size = DEFAULT_MAX_BYTES
    empty_after_seconds: PositiveSeconds = Field(default=3600.0, validation_alias="empty_after")
    check_seconds: PositiveSeconds = DEFAULT_CHECK_SECONDS  # one file's content check, at most
    ignore: Globs = ()
    order_labels: Globs | None = None


class WatchSettings(_Settings):
    mode: Literal["auto", "events", "poll"] = "auto"
    settle_seconds: Seconds = 5.0
    poll_seconds: PositiveSeconds = 2.0
    rescan_seconds: PositiveSeconds = 60.0


class BatchSettings(_Settings):
    max_files: Annotated[int, _whole_number(1, 1000)] = 200
    max_bytes: Size = 50_000_000
    max_wait_seconds: Seconds = 10.0


class PollSettings(_Settings):
    first_seconds: PositiveSeconds = 5.0
    max_seconds: PositiveSeconds = 300.0
    give_up_after_seconds: PositiveSeconds = Field(default=48 * 3600.0, validation_alias="give_up_after")

    @model_validator(mode="after")
    def _ordered(self) -> PollSettings:
        if self.first_seconds > self.max_seconds:
            raise ValueError(
                f"first_seconds ({self.first_seconds:g}) must not be larger than "
                f"max_seconds ({self.max_seconds:g})"
            )
        return self


class InboxSettings(_Settings):
    """The invoices the marketplace issues to the seller, fetched into `<root>/inbox/`; off unless enabled."""

    enabled: bool = False
    since: date | None = None  # the first day fetched from; needed when enabled
    every_seconds: PositiveSeconds = Field(default=6 * 3600.0, validation_alias="every")

    @model_validator(mode="after")
    def _since_when_enabled(self) -> InboxSettings:
        if self.enabled and self.since is None:
            raise ValueError(
                "since: the first day to fetch invoices from (e.g. 2026-01-01) is needed when enabled"
            )
        return self


class OutboxSettings(_Settings):
    name: Annotated[str, BeforeValidator(_outbox_name)]
    root: AbsolutePath
    create_root: bool = False  # a missing root is a typo or a share not mounted: never made unless asked
    marketplace: Literal["octopia", "kaufland"] = "octopia"
    octopia: OctopiaSettings | None = None
    kaufland: KauflandSettings | None = None
    files: FileSettings = Field(default_factory=FileSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    poll: PollSettings = Field(default_factory=PollSettings)
    inbox: InboxSettings = Field(default_factory=InboxSettings)

    @model_validator(mode="after")
    def _one_marketplace(self) -> OutboxSettings:
        problems = []
        if getattr(self, self.marketplace) is None:
            problems.append(f"marketplace: {self.marketplace} needs a `{self.marketplace}:` section")
        for other in {"octopia", "kaufland"} - {self.marketplace}:
            if getattr(self, other) is not None:
                problems.append(
                    f"`{other}:` is for marketplace: {other}, and this outbox's is {self.marketplace}"
                )
        if self.marketplace == "kaufland":
            problems += [
                f"`{key}:` does not apply to a Kaufland outbox (one request per file, answered at once)"
                for key in ("batch", "poll")
                if key in self.model_fields_set
            ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def base_url(self) -> str:
        """The marketplace's API base URL, or `sandbox`."""
        settings = self.octopia if self.marketplace == "octopia" else self.kaufland
        assert settings is not None  # `_one_marketplace`
        return settings.base_url

    @property
    def uses_sandbox(self) -> bool:
        return self.base_url == SANDBOX


class FaultSettings(_Settings):
    error_rate: Rate = 0.0
    rate_limit_rate: Rate = 0.0
    retry_after_seconds: Seconds = 1.0
    slow_rate: Rate = 0.0
    slow_seconds: Seconds = 2.0
    drop_after_accept_rate: Rate = 0.0
    list_delay_seconds: Seconds = 0.0  # a new import shows in the list only after this (a slow marketplace)
    token_ttl_seconds: Annotated[int, _whole_number(1)] = 7200
    refuse_tokens: bool = False
    seed: int | None = None  # the same seed draws the same faults: a rehearsal can be repeated


class KauflandSandboxSettings(_Settings):
    client_key: Text | None = None  # expected Shop-Client-Key; None accepts any
    secret_key: Text | None = Field(default=None, repr=False)  # signatures checked with it; None: not checked
    deemed_supplier_orders: Annotated[frozenset[Text], BeforeValidator(lambda v: v or [])] = frozenset()
    max_requests_per_second: Annotated[int, _whole_number(1)] = 111  # more: 429, as Kaufland does


class SandboxSettings(_Settings):
    orders: Annotated[frozenset[Text] | None, BeforeValidator(_orders)] = None  # None: every order exists
    processing_seconds: Seconds = 2.0
    client_id: Text | None = None  # expected credentials; None accepts any
    client_secret: Text | None = Field(default=None, repr=False)
    seller_id: SellerId | None = None
    kaufland: KauflandSandboxSettings = Field(default_factory=KauflandSandboxSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)


def _checkers(value: Any) -> Any:
    if value == "auto":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64:
        return value
    raise ValueError('must be "auto" or a whole number of checker processes from 1 to 64')


def _listen(value: Any) -> str:
    text = _text(value).strip()
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('must be HOST:PORT, e.g. "127.0.0.1:9464"')
    return text


class MetricsSettings(_Settings):
    listen: Annotated[str, BeforeValidator(_listen)] = "127.0.0.1:9464"

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def _urls(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(url, str) and "://" in url for url in value):
        return value
    raise ValueError('must be a list of notification URLs, e.g. ["mailtos://user:pass@mail.example.com"]')


class NotifySettings(_Settings):
    # apprise URLs (mailto://, mailtos://, msteams://, slack://, …): they may hold a password, never echoed
    urls: Annotated[tuple[SecretStr, ...], BeforeValidator(_urls)]
    digest_seconds: PositiveSeconds = Field(default=3600.0, validation_alias="digest")


class Config(_Settings):
    source: Path  # the file this came from (not a YAML key)
    state_dir: AbsolutePath
    log: LogSettings = Field(default_factory=LogSettings)
    outboxes: Annotated[tuple[OutboxSettings, ...], BeforeValidator(_not_empty)]
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    # content checker processes shared by every outbox; "auto" (None): one per CPU beyond the first, at most 2
    checkers: Annotated[int | None, BeforeValidator(_checkers)] = None
    metrics: MetricsSettings | None = None  # Prometheus metrics; off unless set
    notify: NotifySettings | None = None  # messages for people; off unless set
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    @property
    def uses_sandbox(self) -> bool:
        return any(box.uses_sandbox for box in self.outboxes)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What is unsafe but allowed in the file as loaded (said by `check` and at start)."""
        return self._warnings


# -- loading ----------------------------------------------------------------------------------------

Loc = tuple[str | int, ...]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate keys (PyYAML silently keeps the last one)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # unhashable: PyYAML itself refuses it below
            if key in seen:
                line = key_node.start_mark.line + 1
                self.duplicates.append((line, f"line {line}: duplicate key {json.dumps(str(key))}"))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unquoted(text: str) -> str:
    """PyYAML quotes the text it stumbled on, which may be a secret (`client_secret: !Abc…` reads as a
    tag): every quoted part is left out."""
    return re.sub(r"'[^']*'", "…", text)


def _yaml_problem(problem: str | None) -> str:
    """PyYAML's problem in words that never quote the value, with the fix for the usual cause."""
    text = problem or "invalid YAML"
    for word, sign in (("tag", "!"), ("alias", "*"), ("anchor", "&")):
        if word in text:
            return f"a value starts with '{sign}', which YAML reads as {word}: put the value in quotes"
    return _unquoted(text)


def _parse_yaml(text: str) -> Any:
    loader = _UniqueKeyLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f" ({_unquoted(error.context)})" if error.context else ""
        raise _Problems([f"{where}{_yaml_problem(error.problem)}{context}"]) from None
    except yaml.YAMLError as error:  # no position: e.g. a stray NUL byte
        raise _Problems([f"invalid YAML: {_unquoted(str(error))}"]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise _Problems([message for _, message in sorted(loader.duplicates)])
    return data


class _Problems(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems


def _expand(data: Any, loc: Loc, environ: Mapping[str, str], unset: dict[Loc, list[str]]) -> Any:
    """`${VAR}` replaced in every string value; names not set are collected per location."""
    if isinstance(data, dict):
        return {str(key): _expand(value, (*loc, str(key)), environ, unset) for key, value in data.items()}
    if isinstance(data, list):
        return [_expand(value, (*loc, index), environ, unset) for index, value in enumerate(data)]
    if isinstance(data, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(1) in environ:
                return environ[match.group(1)]
            unset.setdefault(loc, []).append(match.group(0))
            return match.group(0)

        return _VARIABLE.sub(replace, data)
    return data


def _format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _lookup(data: Any, loc: Loc) -> Any:
    for part in loc:
        if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def _field_at(loc: Loc) -> FieldInfo | None:
    """The settings field a YAML location names (list indexes skipped), or None."""
    model: type[BaseModel] | None = Config
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        field = next((f for name, f in model.model_fields.items() if _yaml_key(name, f) == part), None)
        if field is None:
            return None
        model = _model_in(field.annotation)
    return field


def _keys_at(loc: Loc) -> list[str]:
    """The YAML keys accepted at `loc`, for "did you mean" hints."""
    field = _field_at(loc)
    model = Config if not loc else _model_in(field.annotation) if field else None
    if model is None:
        return []
    return [_yaml_key(name, f) for name, f in model.model_fields.items() if name != "source"]


def _yaml_key(name: str, field: FieldInfo) -> str:
    return field.validation_alias if isinstance(field.validation_alias, str) else name


def _echoes(loc: Loc) -> bool:
    """Whether a wrong value at `loc` may be shown: numbers, sizes, durations, switches and choices.
    Never a text field: every secret is one."""
    field = _field_at(loc)
    if field is None:
        return False
    return field.annotation in (int, float, bool) or get_origin(field.annotation) is Literal


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (tuple, Union, UnionType, Annotated):
        return next((m for m in map(_model_in, get_args(annotation)) if m is not None), None)
    return None


_TYPE_MESSAGES = {
    "missing": "is required",
    "string_type": "must be text (put it in quotes)",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "dict_type": "must be a mapping of keys to values",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "frozen_set_type": "must be a list",
    "set_type": "must be a list",
    "invalid_key": "keys must be text",
}


def _describe(error: Any, raw: Any) -> str:
    loc: Loc = tuple(error["loc"])
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _keys_at(loc[:-1]), n=1)
        return f"{_format_loc(loc)}: unknown key" + (f" (did you mean {close[0]}?)" if close else "")
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected')}"
    else:
        message = _TYPE_MESSAGES.get(kind, error["msg"])
    value = _lookup(raw, loc)
    if isinstance(value, str | int | float) and len(str(value)) <= 40 and loc and _echoes(loc):
        message += f", got {json.dumps(value)}"
    return f"{_format_loc(loc)}: {message}"


def _sort_key(problem: tuple[Loc, str]) -> tuple[tuple[int, int, str], ...]:
    return tuple((1, part, "") if isinstance(part, int) else (0, 0, part) for part in problem[0])


def _cross_check(data: Any, cwd: Path) -> list[tuple[Loc, str]]:
    """Rules across outboxes, checked on the raw data so they show even when other fields are wrong."""
    problems: list[tuple[Loc, str]] = []
    boxes = data.get("outboxes") if isinstance(data, dict) else None
    if not isinstance(boxes, list):
        return problems
    names: dict[str, int] = {}
    roots: list[tuple[int, Path]] = []
    for index, box in enumerate(boxes):
        name = box.get("name") if isinstance(box, dict) else None
        if isinstance(name, str):
            if name in names:
                problems.append(
                    (("outboxes", index, "name"), f'"{name}" is already used by outboxes[{names[name]}]')
                )
            names.setdefault(name, index)
        octopia = box.get("octopia") if isinstance(box, dict) else None
        problem = _credentials_problem(octopia) if isinstance(octopia, dict) else None
        if problem is not None:
            problems.append((("outboxes", index, "octopia"), problem))
        root = box.get("root") if isinstance(box, dict) else None
        if isinstance(root, str) and root.strip():
            roots.append((index, (cwd / root).resolve()))
    for index, root in roots:
        for other, other_root in roots:
            if other < index and root == other_root:
                problems.append(
                    (("outboxes", index, "root"), f"is the same folder as outboxes[{other}].root")
                )
            elif other != index and root.is_relative_to(other_root) and root != other_root:
                problems.append((("outboxes", index, "root"), f"is inside outboxes[{other}].root"))
    state_dir = data.get("state_dir")
    if isinstance(state_dir, str) and state_dir.strip():
        state = (cwd / state_dir).resolve()
        for index, root in roots:
            if state.is_relative_to(root) or root.is_relative_to(state):
                problems.append(
                    (("state_dir",), f"must be apart from outboxes[{index}].root (use local disk)")
                )
    return problems


def load_config(path: Path, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Config:
    """Read, expand and validate `path`; ConfigError lists every problem found, each with its location."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else Path(cwd)
    source = Path(os.path.abspath(cwd / path))
    try:
        try:
            text = source.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise _Problems(["cannot read the file: not UTF-8 text"]) from None
        except OSError as error:
            raise _Problems([f"cannot read the file: {error.strerror or error}"]) from None
        raw = _parse_yaml(text)
        if raw is None:
            raise _Problems(["the file is empty; it needs at least state_dir and outboxes"])
        if not isinstance(raw, dict):
            raise _Problems(["must be a YAML mapping with at least state_dir and outboxes"])
    except _Problems as early:
        raise ConfigError(str(path), early.problems) from None

    unset: dict[Loc, list[str]] = {}
    data = _expand(raw, (), environ, unset)
    found = [
        (loc, f"{_format_loc(loc)}: {name} is not set") for loc, names in unset.items() for name in names
    ]
    base = source.parent  # relative paths in the file are relative to the file, wherever it is run from
    found += [(loc, f"{_format_loc(loc)}: {message}") for loc, message in _cross_check(data, base)]
    if "source" in data:
        found.append((("source",), "source: unknown key"))
        del data["source"]
    try:
        config = Config.model_validate({**data, "source": source}, context={"cwd": base})
    except ValidationError as error:
        for item in error.errors(include_url=False):
            loc = tuple(item["loc"])
            if not any(loc[: len(bad)] == bad for bad in unset):  # already reported as not set
                found.append((loc, _describe(item, raw)))
    if found:
        problems = list(dict.fromkeys(message for _, message in sorted(found, key=_sort_key)))
        raise ConfigError(str(path), problems)
    config._warnings = tuple(_exposure_warnings(source, raw))
    return config


def _exposure_warnings(source: Path, raw: dict[str, Any]) -> list[str]:
    """A client secret (of a real marketplace) written in a file every user of the machine may read."""
    try:
        readable_by_all = bool(source.stat().st_mode & stat.S_IROTH)
    except OSError:
        return []
    outboxes = raw.get("outboxes")
    if not readable_by_all or not isinstance(outboxes, list):
        return []
    warnings = []
    for index, box in enumerate(outboxes):
        octopia = box.get("octopia") if isinstance(box, dict) else None
        secret = octopia.get("client_secret") if isinstance(octopia, dict) else None
        real = isinstance(octopia, dict) and octopia.get("base_url") != SANDBOX  # the sandbox's is no secret
        if real and isinstance(secret, str) and not _VARIABLE.search(secret):
            warnings.append(
                f"outboxes[{index}].octopia.client_secret is written in {source}, which every user of this "
                f"machine may read: run `chmod o-r {source}`, or move the secret to client_secret_file"
            )
    return warnings


__all__ = [
    "BatchSettings",
    "Config",
    "FaultSettings",
    "FileSettings",
    "KauflandSettings",
    "LogSettings",
    "MetricsSettings",
    "NotifySettings",
    "OctopiaSettings",
    "OutboxSettings",
    "PollSettings",
    "SandboxSettings",
    "WatchSettings",
    "default_config_path",
    "load_config",
    "parse_duration",
    "parse_size",
]
