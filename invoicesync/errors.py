"""errors (core): the exception tree, and what each branch means for the files.

```
InvoicesyncError         str() is the sentence the operator reads next
├── ConfigError          every problem with its path; exit 2
├── ServiceError         the daemon cannot do its job at all (state_dir unusable, lock held); exit 1
├── OutboxBlocked        bad credentials, forbidden seller: that outbox stops uploading, files kept
└── MarketplaceError
    ├── TransientError   429, or network/5xx where repeating is safe: back off, files wait
    ├── RejectedError    request refused: its files get code Rejected
    └── UnknownOutcome   the answer to an upload was lost: find_lost before any re-send
```

A bad *file* is never an exception: validation returns a `Verdict`.
"""

from __future__ import annotations


class InvoicesyncError(Exception):
    """Base: the message is one sentence a person can act on, free of secrets."""


class ConfigError(InvoicesyncError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n  ".join([head, *self.problems]))


class ServiceError(InvoicesyncError):
    pass


class OutboxBlocked(InvoicesyncError):
    pass


class MarketplaceError(InvoicesyncError):
    pass


class TransientError(MarketplaceError):
    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class RejectedError(MarketplaceError):
    """The marketplace refused the request itself; `detail` and `marketplace_code` are verbatim. `code` is
    the files' error code: `Rejected`, or a more precise one (`DeemedSupplier`)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        marketplace_code: str | None = None,
        code: str = "Rejected",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status_code
        self.detail = detail
        self.marketplace_code = marketplace_code


class UnknownOutcome(MarketplaceError):
    pass


class SchemaUnavailable(ServiceError):
    """The UBL 2.1 XSDs, or a library the checks need, cannot be loaded: a broken installation, not a file."""


class CheckerUnavailable(ServiceError):
    """No checker process could be started or kept alive, for reasons not the file's."""
