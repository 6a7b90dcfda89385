"""model (core): frozen values shared by every layer.

Nothing here does I/O. Shell modules build these from the disk, the journal and the marketplace;
core modules take them in and hand new ones back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Endpoint(StrEnum):
    """Which upload route a batch takes."""

    BULK_IMPORT = "bulk"  # POST /order-invoice-imports: each file's order from its name
    ORDER_DOCUMENTS = "order"  # POST /orders/{orderId}/invoice-documents: files that belong together


class ItemState(StrEnum):
    """A file's state in the journal (`items.state`), in the order a file goes through them."""

    CLAIMED = "claimed"  # renamed into .processing/, not yet checked
    READY = "ready"  # checked, waiting to be sent
    BATCHED = "batched"  # in a batch (planned, uploading or submitted)
    DECIDED = "decided"  # its fate known and journaled; its report and move not yet done
    FINISHED = "finished"  # in sent/ or failed/, beside its report
    CONTAINER = "container"  # a dropped ZIP whose entries travel on their own


class BatchState(StrEnum):
    """A batch's state in the journal (`batches.state`)."""

    PLANNED = "planned"  # made, not yet sent (or to be sent again)
    UPLOADING = "uploading"  # its bytes may have left: never sent again without looking it up first
    SUBMITTED = "submitted"  # the marketplace took it: its import is polled
    DONE = "done"  # every file's outcome journaled


class Stage(StrEnum):
    """Where in the flow a file's fate was decided (the report's `stage`)."""

    VALIDATION = "validation"
    UPLOAD = "upload"
    IMPORT = "import"


class ImportStatus(StrEnum):
    RUNNING = "Running"
    SUCCESS = "Success"
    PARTIAL_SUCCESS = "PartialSuccess"
    FAILURE = "Failure"
    UNKNOWN = "Unknown"  # an answer we do not recognise: counts as still running
    MISSING = "Missing"  # the marketplace does not know the import (404): look it up, re-send if absent

    @property
    def is_terminal(self) -> bool:
        return self in (ImportStatus.SUCCESS, ImportStatus.PARTIAL_SUCCESS, ImportStatus.FAILURE)


class FileStatus(StrEnum):
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILURE = "Failure"
    UNKNOWN = "Unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (FileStatus.SUCCESS, FileStatus.FAILURE)


@dataclass(frozen=True, slots=True)
class FileError:
    """Why a file failed: `code` is ours (PRODUCT §3); `detail`/`marketplace_code` are verbatim."""

    code: str
    message: str
    hint: str
    detail: str | None = None
    marketplace_code: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the content check says of one file: `error` None means it may be sent.

    `order_named` is the order the document itself names, where it names one (kept for the report).
    """

    kind: str  # "pdf", "xml" or "zip"
    error: FileError | None = None
    order_named: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One file inside a batch, as the marketplace adapter needs it."""

    item_id: str
    order_id: str
    upload_name: str  # "<order>.<ext>", the name the marketplace sees
    path: str  # where the bytes are now (under .processing/)
    size: int
    content_type: str
    sha256: str = ""  # of the bytes checked, as journaled (the staged copy may be gone after a crash)


@dataclass(frozen=True, slots=True)
class Batch:
    """One request's worth of files.

    `bundle_name` is unique across all requests and journaled before upload: it is the multipart
    part name, echoed back in each result entry, so a lost answer can be found again.
    """

    batch_id: str
    bundle_name: str
    endpoint: Endpoint
    items: tuple[BatchItem, ...]
    order_id: str | None = None  # set for ORDER_DOCUMENTS
    bundle_path: str | None = None  # the ZIP built for BULK_IMPORT; None for ORDER_DOCUMENTS
    # what the marketplace noted before the first upload (`Marketplace.prepare`), as journaled
    prepared: Mapping[str, Any] = field(default_factory=dict)
    # the marketplace's IDs of our earlier deliveries to this order at this destination, oldest first: a
    # correction replaces them where the marketplace adds an invoice rather than replacing it
    earlier: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FileResult:
    """One entry of an import's `files[]`, parsed tolerantly."""

    name: str | None  # the multipart part name echoed back
    file_name: str | None
    order_id: str | None
    status: FileStatus
    error_code: str | None = None
    error_detail: str | None = None
    integration_status: str | None = None


@dataclass(frozen=True, slots=True)
class ImportSnapshot:
    """What the marketplace said of an import at one moment; `raw` is its JSON, kept verbatim."""

    import_id: str
    status: ImportStatus
    files: tuple[FileResult, ...]
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Submission:
    """A batch the marketplace accepted. A synchronous marketplace hands back a terminal snapshot."""

    import_id: str
    snapshot: ImportSnapshot


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """The final word on one item: delivered, or failed with an error."""

    item_id: str
    stage: Stage
    error: FileError | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None
