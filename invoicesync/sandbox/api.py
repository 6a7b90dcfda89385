"""sandbox.api (shell): what the sandbox answers: one `Request` in, one `Response` value out.

Routes, token and seller checks and fault draws live here; `server` only reads the request and writes
(or, for a drop, withholds) the answer. Faults are drawn before anything is done, so a 5xx or 429 creates
nothing; a drop is decided with the others but happens only once the import exists.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from invoicesync.sandbox.checks import expand, order_known, order_not_found_detail
from invoicesync.sandbox.imports import decode_cursor, encode_cursor
from invoicesync.sandbox.multipart import (
    MAX_BODY_BYTES,
    BodyReader,
    BodyTooLarge,
    MultipartError,
    NotMultipart,
    Part,
    boundary_of,
    close_parts,
    read_parts,
    split_header_value,
)
from invoicesync.sandbox.state import (
    DOWNLOAD_CUT,
    DROP_AFTER_ACCEPT,
    RATE_LIMIT,
    SERVER_ERROR,
    UNAVAILABLE_EMPTY,
    SandboxState,
)

TOKEN_PATH = "/auth/realms/maas/protocol/openid-connect/token"
API = "/seller/v2"
ROUTE_TOKEN = "POST /token"
ROUTE_BULK = "POST /order-invoice-imports"
ROUTE_ORDER = "POST /orders/{orderId}/invoice-documents"
ROUTE_LIST = "GET /order-invoice-imports"
ROUTE_GET = "GET /order-invoice-imports/{importId}"
ROUTE_OPERATIONS = "GET /operations"
ROUTE_DOCUMENT = "GET /invoices/{invoiceId}/documents"
MAX_FORM_BYTES = 64 * 1024
_SELLER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INVALID_TOKEN = ("WWW-Authenticate", 'Bearer realm="maas", error="invalid_token"')


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # not yet percent-decoded
    query: str
    headers: dict[str, str]  # names in lower case
    body: BodyReader


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_seconds: float = 0.0  # a slowed answer
    drop: bool = False  # close the connection without answering at all
    cut_after: int | None = (
        None  # send the headers and this many bytes of the body, then close (a download cut)
    )


NOT_FOUND = Response(404, b"Not Found\n", "text/plain; charset=utf-8")


def json_response(status: int, body: dict[str, Any], *headers: tuple[str, str]) -> Response:
    return Response(status, json.dumps(body, ensure_ascii=False).encode(), "application/json", headers)


def problem(
    status: int,
    detail: str,
    instance: str,
    *headers: tuple[str, str],
    errors: dict[str, list[str]] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://developer.octopia-io.net/errors/{status}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "traceId": uuid.uuid4().hex,
    }
    if errors:
        body["errors"] = errors
    return Response(
        status, json.dumps(body, ensure_ascii=False).encode(), "application/problem+json", headers
    )


def match_route(method: str, path: str) -> tuple[str, str | None] | None:
    """(route, percent-decoded path parameter) for a known method and path; None for everything else."""
    if path == TOKEN_PATH:
        return (ROUTE_TOKEN, None) if method == "POST" else None
    if not path.startswith(API + "/"):
        return None
    segments = path[len(API) + 1 :].split("/")
    if segments == ["order-invoice-imports"] and method in ("GET", "POST"):
        return (ROUTE_LIST if method == "GET" else ROUTE_BULK), None
    if len(segments) == 2 and segments[0] == "order-invoice-imports" and segments[1] and method == "GET":
        return ROUTE_GET, unquote(segments[1])
    if len(segments) == 3 and segments[0] == "orders" and segments[1] and segments[2] == "invoice-documents":
        return (ROUTE_ORDER, unquote(segments[1])) if method == "POST" else None
    if segments == ["operations"] and method == "GET":
        return ROUTE_OPERATIONS, None
    if len(segments) == 3 and segments[0] == "invoices" and segments[1] and segments[2] == "documents":
        return (ROUTE_DOCUMENT, unquote(segments[1])) if method == "GET" else None
    return None


def handle(state: SandboxState, request: Request) -> Response:
    """The answer to one request (`/_sandbox/` introspection included)."""
    if request.path.startswith("/_sandbox/"):
        return _introspect(state, request)
    route = match_route(request.method, request.path)
    if route is None:
        return NOT_FOUND
    name, parameter = route
    state.count_request(name, token=name == ROUTE_TOKEN)
    plan = state.draw_faults(upload=name in (ROUTE_BULK, ROUTE_ORDER, ROUTE_DOCUMENT))
    delay = state.options.slow_seconds if plan.slow else 0.0
    if plan.answer is not None:
        answer = _fault(state, plan.answer, request.path)
    elif name == ROUTE_TOKEN:
        answer = _token(state, request)
    elif refusal := _refusal(state, request):
        answer = refusal
    elif name == ROUTE_LIST:
        answer = _list(state, request)
    elif name == ROUTE_GET:
        found = state.store.get(parameter or "", hidden_seconds=state.options.list_delay_seconds)
        answer = json_response(200, found) if found else problem(404, "Unknown import.", request.path)
    elif name == ROUTE_OPERATIONS:
        answer = _operations(state, request)
    elif name == ROUTE_DOCUMENT:
        pdf = state.issued.pdf(parameter or "")
        if pdf is None:
            return problem(404, "This invoice has no document.", request.path)
        if plan.drop:  # the download is cut half-way: headers and half the bytes, then the connection ends
            state.count_fault(DOWNLOAD_CUT)
            return Response(200, pdf, "application/pdf", cut_after=len(pdf) // 2, delay_seconds=delay)
        answer = Response(200, pdf, "application/pdf")
    else:
        answer = _upload(state, request, parameter if name == ROUTE_ORDER else None)
        if plan.drop and answer.status == 201:
            state.count_fault(DROP_AFTER_ACCEPT)
            return Response(0, drop=True, delay_seconds=delay)  # a slow drop: given up on late
    return Response(answer.status, answer.body, answer.content_type, answer.headers, delay_seconds=delay)


def _operations(state: SandboxState, request: Request) -> Response:
    """Financial operations changed within [changedAtMin, changedAtMax], a page at a time (pageIndex from
    0, pageSize default 20, at most 100); 400 without a full window, as the financial report page says."""
    params = parse_qs(request.query)
    window = [_instant((params.get(key) or [""])[0]) for key in ("changedAtMin", "changedAtMax")]
    if window[0] is None or window[1] is None:
        return problem(400, "A full changedAtMin + changedAtMax window (ISO 8601) is required.", request.path)
    try:
        index = int((params.get("pageIndex") or ["0"])[0])
        size = int((params.get("pageSize") or ["20"])[0])
    except ValueError:
        return problem(400, "pageIndex and pageSize must be whole numbers.", request.path)
    if index < 0 or not 1 <= size <= 100:
        return problem(400, "pageIndex must be 0 or more and pageSize 1 to 100.", request.path)
    operations = state.issued.operations(window[0], window[1])
    page = operations[index * size : (index + 1) * size]
    total = sum(float(operation["totalAmount"]) for operation in operations)
    return json_response(
        200,
        {
            "items": page,
            "pageIndex": index,
            "pageSize": size,
            "itemsCount": len(operations),
            "common": {"totalAmount": total},
        },
    )


def _instant(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _introspect(state: SandboxState, request: Request) -> Response:
    path = request.path
    if path == "/_sandbox/issued/cycle" and request.method == "POST":
        return json_response(200, {"issued": state.issued.new_cycle()})
    if path == "/_sandbox/issued" and request.method == "GET":
        return json_response(200, {"invoices": state.issued.listed()})
    if request.method != "GET":
        return NOT_FOUND
    if path == "/_sandbox/received":
        return json_response(200, {"files": state.store.received()})
    if path == "/_sandbox/stats":
        return json_response(200, state.stats())
    prefix = "/_sandbox/orders/"
    if path.startswith(prefix) and len(path) > len(prefix) and "/" not in path[len(prefix) :]:
        order_id = unquote(path[len(prefix) :])
        return json_response(200, {"orderId": order_id, "documents": state.store.documents(order_id)})
    return NOT_FOUND


def _fault(state: SandboxState, kind: str, instance: str) -> Response:
    if kind == UNAVAILABLE_EMPTY:
        return Response(503)
    if kind == RATE_LIMIT:
        return problem(429, "Too many requests: retry later.", instance, ("Retry-After", state.retry_after()))
    status = 500 if kind == SERVER_ERROR else 503
    return problem(status, "The sandbox injected this fault; nothing was done.", instance)


def _token(state: SandboxState, request: Request) -> Response:
    path = request.path
    if state.options.refuse_tokens:
        return problem(401, "The client credentials were refused (sandbox: refuse_tokens).", path)
    media_type, _ = split_header_value(request.headers.get("content-type", ""))
    chunks: list[bytes] = []
    while request.body.consumed <= MAX_FORM_BYTES and (chunk := request.body.read()):
        chunks.append(chunk)
    try:
        form_text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        form_text = ""
    if media_type != "application/x-www-form-urlencoded" or not request.body.done or not form_text:
        return problem(400, "Send an application/x-www-form-urlencoded form (at most 64 KiB).", path)
    form = parse_qs(form_text, keep_blank_values=True)
    fields = {key: values[0] for key, values in form.items() if len(values) == 1}
    if fields.get("grant_type") != "client_credentials":
        errors = {"grant_type": ["grant_type must be client_credentials."]}
        return problem(400, "Unsupported grant type.", path, errors=errors)
    if missing := [key for key in ("client_id", "client_secret") if not fields.get(key)]:
        errors = {key: [f"{key} is required."] for key in missing}
        return problem(400, "The client credentials are incomplete.", path, errors=errors)
    if not state.credentials_ok(fields["client_id"], fields["client_secret"]):
        return problem(401, "Invalid client credentials.", path)
    token, ttl = state.issue_token()
    answer = {
        "access_token": token,
        "expires_in": ttl,
        "refresh_expires_in": 0,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "scope": "profile email",
    }
    return json_response(200, answer, ("Cache-Control", "no-store"))


def _refusal(state: SandboxState, request: Request) -> Response | None:
    """The 401/400/403 for a missing or bad token or SellerId; None when the call may go on."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not state.token_valid(token.strip()):
        return problem(401, "The access token is missing, expired or invalid.", request.path, _INVALID_TOKEN)
    seller = request.headers.get("sellerid", "").strip()
    expected = state.options.seller_id
    if not seller:
        errors = {"SellerId": ["The SellerId header is required."]}
        return problem(400, "The SellerId header is missing.", request.path, errors=errors)
    if (expected is not None and seller != expected) or not _SELLER.match(seller):
        return problem(403, f"This client is not allowed to act for seller {seller}.", request.path)
    return None


def _list(state: SandboxState, request: Request) -> Response:
    params = parse_qs(request.query, keep_blank_values=True)
    size_text = params.get("pageSize", ["20"])[0]
    if not size_text.isdigit() or not 1 <= int(size_text) <= 100:
        message = "pageSize must be between 1 and 100."
        return problem(400, message, request.path, errors={"pageSize": [message]})
    page_size = int(size_text)
    before = None
    if "cursor" in params:
        try:
            before = decode_cursor(params["cursor"][0])
        except ValueError:
            message = "The cursor is not valid: pass back the one the previous page gave."
            return problem(400, message, request.path, errors={"cursor": [message]})
    hidden = state.options.list_delay_seconds
    items, next_before = state.store.page(page_size=page_size, before=before, hidden_seconds=hidden)
    body: dict[str, Any] = {"itemsPerPage": page_size, "items": items}
    if next_before is None:
        return json_response(200, body)
    body["nextCursor"] = cursor = encode_cursor(next_before)
    link = f'<{API}/order-invoice-imports?pageSize={page_size}&cursor={quote(cursor)}>; rel="next"'
    return json_response(200, body, ("Link", link))


def _upload(state: SandboxState, request: Request, order_id: str | None) -> Response:
    try:
        boundary = boundary_of(request.headers.get("content-type"))
    except NotMultipart as error:
        return problem(415, f"{error}.", request.path)
    except MultipartError as error:
        return problem(400, f"Bad multipart body: {error}.", request.path, errors={"files": [str(error)]})
    too_large = problem(413, f"The request is larger than {MAX_BODY_BYTES} bytes.", request.path)
    if int(request.headers.get("content-length", "0") or "0") > MAX_BODY_BYTES:
        return too_large
    try:
        parts = read_parts(request.body.read, boundary)
    except BodyTooLarge:
        return too_large
    except MultipartError as error:
        return problem(400, f"Bad multipart body: {error}.", request.path, errors={"files": [str(error)]})
    try:
        return _create_import(state, parts, order_id, request.path)
    finally:
        close_parts(parts)


def _create_import(state: SandboxState, parts: list[Part], order_id: str | None, path: str) -> Response:
    options = state.options
    if not parts:
        message = "No file part: send each file as a form-data part with a filename."
        return problem(400, message, path, errors={"files": [message]})
    if order_id is not None and not order_known(order_id, options.orders):
        detail = order_not_found_detail(order_id)
        return problem(400, detail, path, errors={"orderId": [detail]})
    entries = [entry for part in parts for entry in expand(part, path_order=order_id, orders=options.orders)]
    if len(entries) > options.max_files_per_request:
        message = f"Too many files: {len(entries)}, at most {options.max_files_per_request} per request."
        return problem(400, message, path, errors={"files": [message]})
    created = state.store.create(entries, order_id=order_id, processing_seconds=options.processing_seconds)
    return json_response(201, created, ("Location", f"{API}/order-invoice-imports/{created['importId']}"))
