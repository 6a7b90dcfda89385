"""Octopia's tolerant parsers on plain values: the documented shapes and the odd ones the docs allow."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from invoicesync.marketplaces.octopia import (
    next_page,
    parse_created_at,
    parse_import,
    parse_problem,
    parse_retry_after,
)
from invoicesync.model import FileResult, FileStatus, ImportStatus

IMPORT_ID = "0c9f3d2e-6a1b-4f57-8e0a-5d4c3b2a1f09"
DETAIL = "La commande n'existe pas — vérifiez l'identifiant"

CREATED = {
    "importId": IMPORT_ID,
    "status": "Running",
    "createdAt": "2026-05-12T08:30:00.125Z",
    "files": [
        {
            "name": "bundle-000417",
            "fileName": "SCID01210525142759UT8E.pdf",
            "orderId": "SCID01210525142759UT8E",
            "status": "Running",
            "integrationStatus": "OrderCheck",
            "error": None,
        }
    ],
}

FINISHED = {
    "importId": IMPORT_ID,
    "status": "PartialSuccess",
    "createdAt": "2026-05-12T08:30:00.125Z",
    "files": [
        {
            "name": "bundle-000417",
            "fileName": "SCID01210525142759UT8E.pdf",
            "orderId": "SCID01210525142759UT8E",
            "status": "Success",
            "integrationStatus": "Integrated",
            "error": None,
        },
        {
            "name": "bundle-000417",
            "fileName": "SCID01210601093012AB4K.xml",
            "orderId": "SCID01210601093012AB4K",
            "status": "Failure",
            "integrationStatus": "Rejected",
            "error": {"code": "OrderNotFound", "detail": DETAIL},
        },
    ],
}


def test_created_import_is_running_with_the_first_entry() -> None:
    snapshot = parse_import(CREATED)
    assert snapshot.import_id == IMPORT_ID
    assert snapshot.status is ImportStatus.RUNNING
    assert snapshot.created_at == "2026-05-12T08:30:00.125Z"
    assert snapshot.files == (
        FileResult(
            name="bundle-000417",
            file_name="SCID01210525142759UT8E.pdf",
            order_id="SCID01210525142759UT8E",
            status=FileStatus.RUNNING,
            integration_status="OrderCheck",
        ),
    )
    assert snapshot.raw is CREATED


def test_finished_import_keeps_each_files_error_verbatim() -> None:
    snapshot = parse_import(FINISHED)
    assert snapshot.status is ImportStatus.PARTIAL_SUCCESS and snapshot.status.is_terminal
    ok, failed = snapshot.files
    assert ok.status is FileStatus.SUCCESS and ok.error_code is None and ok.error_detail is None
    assert failed.status is FileStatus.FAILURE
    assert (failed.error_code, failed.error_detail) == ("OrderNotFound", DETAIL)
    assert failed.integration_status == "Rejected"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("success", ImportStatus.SUCCESS),
        ("PARTIALSUCCESS", ImportStatus.PARTIAL_SUCCESS),
        ("partial_success", ImportStatus.PARTIAL_SUCCESS),
        ("failure", ImportStatus.FAILURE),
        ("running", ImportStatus.RUNNING),
        ("Queued", ImportStatus.UNKNOWN),
        (None, ImportStatus.UNKNOWN),
        (3, ImportStatus.UNKNOWN),
    ],
)
def test_import_status_is_read_case_insensitively_and_unknown_otherwise(
    value: object, expected: ImportStatus
) -> None:
    assert parse_import({"importId": "x", "status": value}).status is expected


def test_missing_files_and_optionals_are_accepted() -> None:
    snapshot = parse_import({"importId": "abc", "status": "Running"})
    assert snapshot.files == ()
    assert snapshot.created_at is None


def test_null_or_odd_files_list_yields_no_entries() -> None:
    assert parse_import({"importId": "abc", "files": None}).files == ()
    assert parse_import({"importId": "abc", "files": {"not": "a list"}}).files == ()
    assert parse_import({"importId": "abc", "files": ["junk", 3, None]}).files == ()


def test_file_with_only_a_status_has_every_other_field_none() -> None:
    (entry,) = parse_import({"importId": "abc", "files": [{"status": "FAILURE"}]}).files
    assert entry == FileResult(name=None, file_name=None, order_id=None, status=FileStatus.FAILURE)


def test_error_given_as_a_string_is_kept_as_detail() -> None:
    (entry,) = parse_import({"files": [{"status": "Failure", "error": "Duplicate invoice"}]}).files
    assert (entry.error_code, entry.error_detail) == (None, "Duplicate invoice")


def test_error_with_a_structured_detail_keeps_it_as_json() -> None:
    entry = {"status": "Failure", "error": {"code": 12, "detail": {"line": 3, "why": "é"}}}
    (result,) = parse_import({"files": [entry]}).files
    assert result.error_code == "12"
    assert result.error_detail == '{"line": 3, "why": "é"}'


def test_unknown_fields_are_ignored_and_kept_in_raw() -> None:
    body = {**CREATED, "tenant": "cdiscount", "files": [{**CREATED["files"][0], "extra": [1, 2]}]}  # type: ignore[dict-item]  # a list of dicts is fine here
    snapshot = parse_import(body)
    assert snapshot == parse_import(CREATED)
    assert snapshot.raw["tenant"] == "cdiscount"


def test_unknown_file_status_is_unknown_not_an_error() -> None:
    (entry,) = parse_import({"files": [{"status": "Quarantined", "orderId": None}]}).files
    assert entry.status is FileStatus.UNKNOWN
    assert entry.order_id is None


def test_a_non_object_answer_is_an_unknown_snapshot_with_the_body_kept() -> None:
    snapshot = parse_import(["not", "an", "import"])
    assert snapshot.status is ImportStatus.UNKNOWN
    assert snapshot.import_id == ""
    assert snapshot.raw == {"body": ["not", "an", "import"]}


NOW = datetime(2026, 5, 12, 8, 30, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("Tue, 12 May 2026 08:31:30 GMT", 90.0),
        ("Tue, 12 May 2026 08:00:00 GMT", 0.0),  # already past: no wait
        (None, None),
        ("", None),
        ("-3", None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_created_at_accepts_z_offsets_and_no_fraction() -> None:
    assert parse_created_at("2026-05-12T08:30:00.125Z") == datetime(2026, 5, 12, 8, 30, 0, 125000, tzinfo=UTC)
    assert parse_created_at("2026-05-12T10:30:00+02:00") == NOW
    assert parse_created_at("2026-05-12T08:30:00") == NOW
    assert parse_created_at("yesterday") is None
    assert parse_created_at(None) is None


LIST_URL = "http://127.0.0.1:8000/seller/v2/order-invoice-imports?pageSize=2"


def _page(headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, headers=headers, request=httpx.Request("GET", LIST_URL))


def test_next_page_follows_a_link_path_resolved_against_the_request() -> None:
    link = '</seller/v2/order-invoice-imports?pageSize=2&cursor=eyJiZWZvcmUiOjQxfQ>; rel="next"'
    expected = "http://127.0.0.1:8000/seller/v2/order-invoice-imports?pageSize=2&cursor=eyJiZWZvcmUiOjQxfQ"
    assert next_page(_page({"Link": link}), {"nextCursor": "ignored"}) == expected


def test_next_page_falls_back_to_next_cursor_url_encoded() -> None:
    url = next_page(_page(), {"items": [], "nextCursor": "a b/c=="})
    assert url is not None
    assert httpx.URL(url).params["cursor"] == "a b/c=="
    assert httpx.URL(url).params["pageSize"] == "2"


def test_next_page_is_none_on_the_last_page() -> None:
    assert next_page(_page(), {"items": []}) is None
    assert next_page(_page(), {"items": [], "nextCursor": None}) is None
    assert next_page(_page({"Link": '</x>; rel="prev"'}), None) is None


def test_problem_shows_title_detail_and_errors() -> None:
    body = {
        "type": "https://developer.octopia-io.net/errors/400",
        "title": "Bad Request",
        "status": 400,
        "detail": "pageSize must be between 1 and 100.",
        "errors": {"pageSize": ["pageSize must be between 1 and 100."], "files": ["a", "b"]},
    }
    response = httpx.Response(400, json=body, headers={"content-type": "application/problem+json"})
    assert parse_problem(response) == (
        "Bad Request: pageSize must be between 1 and 100. "
        "(pageSize: pageSize must be between 1 and 100.; files: a b)"
    )


def test_problem_of_plain_text_or_nothing_is_the_raw_text() -> None:
    assert parse_problem(httpx.Response(404, text="Not Found — no route")) == "Not Found — no route"
    assert parse_problem(httpx.Response(503)) == ""
