"""sandbox.kaufland (shell): the built-in Kaufland simulator's answers, under `/kaufland/v2` of the sandbox.

What kaufland.md describes, strictly: every call signed (`Shop-Client-Key`, `Shop-Timestamp` within five
minutes of the sandbox's clock, `Shop-Signature` over the absolute URI and the raw body), at most
`kaufland_rate_limit` calls per second (then `429`, nothing done), one PDF per upload (`original_name`,
`mime_type: application/pdf`, base64 `data`, no other key), invoices kept per order and **added** on each
upload, deemed-supplier orders, and the same injected faults as the Octopia simulator (5xx, 429, slow
answers, an upload stored and then its answer dropped, every call refused with `refuse_tokens`). Each
invoice's `url` serves its bytes with an access token, as Kaufland's does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from invoicesync.sandbox.api import NOT_FOUND, Request, Response, json_response
from invoicesync.sandbox.checks import order_known
from invoicesync.sandbox.kaufland_store import FILES_PATH
from invoicesync.sandbox.multipart import MAX_BODY_BYTES
from invoicesync.sandbox.state import (
    DOWNLOAD_CUT,
    DROP_AFTER_ACCEPT,
    RATE_LIMIT,
    SERVER_ERROR,
    UNAVAILABLE_EMPTY,
)

if TYPE_CHECKING:
    from invoicesync.sandbox.state import SandboxState

KAUFLAND_API = "/kaufland/v2"
INTROSPECT_PATH = "/kaufland/_sandbox/orders"  # every order's invoices, without auth (tests, benchmarks)
DEEMED_PATH = "/kaufland/_sandbox/deemed/"  # POST …/{order}: Kaufland issues one more invoice on the order
MAX_SKEW_SECONDS = 300
RATE_LIMITED = "rate_limited"  # a call over the per-second limit (not an injected fault)
UPLOAD_KEYS = {"original_name", "mime_type", "data"}


def _problem(
    status: int, message: str, kind: str, *headers: tuple[str, str], errors: list[Any] | None = None
) -> Response:
    body = {"type": f"/problems/{kind}", "message": message, "errors": errors or []}
    return Response(status, json.dumps(body).encode(), "application/json", headers)


def handle(state: SandboxState, request: Request) -> Response:
    """The answer to one call under /kaufland/."""
    origin = f"http://{request.headers.get('host', '')}"
    state.kaufland.issue_deemed(state.options.deemed_supplier_orders, origin)
    if request.path.startswith(FILES_PATH):
        return _file(state, request)
    if request.path == INTROSPECT_PATH and request.method == "GET":
        return json_response(200, {"orders": state.kaufland.all_orders(), "uploads": state.kaufland.uploads})
    if request.path.startswith(DEEMED_PATH) and request.method == "POST":  # a new deemed-supplier invoice
        order_id = unquote(request.path[len(DEEMED_PATH) :])
        return json_response(200, {"data": _shown(state.kaufland.add_deemed(order_id, origin))})
    options = state.options
    segments = (
        request.path[len(KAUFLAND_API) + 1 :].split("/")
        if request.path.startswith(KAUFLAND_API + "/")
        else []
    )
    route = _route(request.method, segments)
    if route is None:
        return NOT_FOUND
    state.count_request(f"kaufland {route}")
    store = state.kaufland
    if not store.within_rate(options.kaufland_rate_limit):
        state.count_fault(RATE_LIMITED)
        _drain(request)
        return _problem(429, "Too many requests.", "too-many-requests", ("Retry-After", "1"))
    body = _drain(request)
    plan = state.draw_faults(upload=route == "upload")
    delay = options.slow_seconds if plan.slow else 0.0
    if plan.answer is not None:
        answer = _fault(plan.answer)
    elif refusal := _refusal(state, request, body):
        answer = refusal
    else:
        answer = _answer(state, request, route, segments, body)
        if plan.drop and answer.status == 201:
            state.count_fault(DROP_AFTER_ACCEPT)
            return Response(0, drop=True, delay_seconds=delay)
    return Response(answer.status, answer.body, answer.content_type, answer.headers, delay_seconds=delay)


def _route(method: str, segments: list[str]) -> str | None:
    if len(segments) == 2 and segments[0] == "orders" and segments[1] and method == "GET":
        return "order"
    if segments == ["order-invoices"] and method == "GET":
        return "list"
    if len(segments) == 2 and segments[0] == "order-invoices" and segments[1] and method == "POST":
        return "upload"
    if len(segments) == 3 and segments[0] == "order-invoices" and all(segments[1:]):
        return {"GET": "get", "DELETE": "delete"}.get(method)
    return None


def _drain(request: Request) -> bytes:
    chunks: list[bytes] = []
    while request.body.consumed <= MAX_BODY_BYTES and (chunk := request.body.read()):
        chunks.append(chunk)
    return b"".join(chunks)


def _fault(kind: str) -> Response:
    if kind == UNAVAILABLE_EMPTY:
        return Response(503)
    if kind == RATE_LIMIT:
        return _problem(429, "Too many requests.", "too-many-requests", ("Retry-After", "1"))
    status = 500 if kind == SERVER_ERROR else 502
    return Response(status, b"<html><body>Bad Gateway</body></html>", "text/html")


def _refusal(state: SandboxState, request: Request, body: bytes) -> Response | None:
    options = state.options
    headers = request.headers
    if options.refuse_tokens:
        return _problem(401, "Invalid credentials (sandbox: refuse_tokens).", "invalid-credentials")
    key, stamp, signature = (
        headers.get(name, "") for name in ("shop-client-key", "shop-timestamp", "shop-signature")
    )
    if not key or not stamp or not signature:
        return _problem(401, "Missing or invalid request header.", "missing-or-invalid-request-header")
    if options.kaufland_client_key is not None and not hmac.compare_digest(
        key.encode(), options.kaufland_client_key.encode()
    ):
        return _problem(401, "Invalid credentials.", "invalid-credentials")
    if not stamp.isdigit() or abs(int(stamp) - time.time()) > MAX_SKEW_SECONDS:
        return _problem(401, "The timestamp is out of range.", "corrupted-signature")
    uri = f"http://{headers.get('host', '')}{request.path}{'?' + request.query if request.query else ''}"
    message = b"\n".join([request.method.encode(), uri.encode(), body, stamp.encode()])
    expected = hmac.new((options.kaufland_secret_key or "").encode(), message, hashlib.sha256).hexdigest()
    if options.kaufland_secret_key is not None and not hmac.compare_digest(expected, signature):
        return _problem(401, "The signature does not match.", "corrupted-signature")
    return None


def _answer(state: SandboxState, request: Request, route: str, segments: list[str], body: bytes) -> Response:
    options, store = state.options, state.kaufland
    if route == "list":
        return _list(store.all_orders(), parse_qs(request.query))
    order_id = unquote(segments[1])
    known = order_known(order_id, options.orders)
    deemed = order_id in options.deemed_supplier_orders
    if not known and not deemed:
        return _problem(404, f"Order {order_id} not found.", "not-found")
    if route == "order":
        data = {
            "id_order": order_id,
            "is_marketplace_deemed_supplier": deemed,
            "order_invoices": [_shown(i) for i in store.invoices(order_id)] or None,
        }
        return json_response(200, {"data": data})
    if route == "upload":
        return _upload(state, request, order_id, body, deemed)
    invoice_id = unquote(segments[2])
    found = [i for i in store.invoices(order_id) if str(i["id_invoice"]) == invoice_id]
    if route == "get":
        return (
            json_response(200, {"data": _shown(found[0])})
            if found
            else _problem(404, "Invoice not found.", "not-found")
        )
    if store.delete(order_id, invoice_id):
        return Response(204)
    return _problem(404, "Invoice not found.", "not-found")


def _list(orders: dict[str, list[dict[str, Any]]], params: dict[str, list[str]]) -> Response:
    """Every order's invoices, oldest first, from `ts_created_from_iso` on, `limit` (1-100, default 30) from
    `offset`."""
    try:
        limit = int((params.get("limit") or ["30"])[0])
        offset = int((params.get("offset") or ["0"])[0])
    except ValueError:
        return _problem(400, "limit and offset must be whole numbers.", "validation-error")
    if not 1 <= limit <= 100 or offset < 0:
        return _problem(400, "limit must be 1 to 100 and offset 0 or more.", "validation-error")
    since = (params.get("ts_created_from_iso") or [""])[0]
    every = sorted(
        (i for invoices in orders.values() for i in invoices if not since or i["ts_created_iso"] >= since),
        key=lambda i: (i["ts_created_iso"], i["id_invoice"]),
    )
    return json_response(
        200,
        {
            "data": [_shown(i) for i in every[offset : offset + limit]],
            "pagination": {"offset": offset, "limit": limit, "total": len(every)},
        },
    )


def _upload(state: SandboxState, request: Request, order_id: str, body: bytes, deemed: bool) -> Response:
    if deemed:
        return _problem(400, "Kaufland is the deemed supplier of this order.", "validation-error")
    try:
        document = json.loads(body)
    except ValueError:
        return _problem(400, "The body is not JSON.", "validation-error")
    if not isinstance(document, dict) or set(document) != UPLOAD_KEYS:
        return _problem(
            400,
            "Invalid request.",
            "validation-error",
            errors=[{"field": "body", "message": "exactly original_name, mime_type, data"}],
        )
    if document["mime_type"] != "application/pdf":
        return _problem(
            400,
            "Invalid request.",
            "validation-error",
            errors=[{"field": "mime_type", "message": "unsupported value"}],
        )
    try:
        data = base64.b64decode(document["data"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        return _problem(
            400, "Invalid request.", "validation-error", errors=[{"field": "data", "message": "not base64"}]
        )
    if not data.startswith(b"%PDF-"):
        return _problem(
            400, "Invalid request.", "validation-error", errors=[{"field": "data", "message": "not a PDF"}]
        )
    origin = f"http://{request.headers.get('host', '')}"
    invoice = state.kaufland.add(order_id, str(document["original_name"]), data, origin=origin)
    return json_response(201, {"data": _shown(invoice)})


def _shown(invoice: dict[str, Any]) -> dict[str, Any]:
    """An invoice as the API shows it (without the sandbox's own sha256 and size)."""
    return {key: value for key, value in invoice.items() if key not in ("sha256", "size")}


def _file(state: SandboxState, request: Request) -> Response:
    """An invoice's bytes behind its `url` (no signature: the token is the key), with the same faults as
    the API; a drop cuts the download half-way."""
    state.count_request("kaufland file")
    plan = state.draw_faults(upload=True)
    delay = state.options.slow_seconds if plan.slow else 0.0
    if plan.answer is not None:
        answer = _fault(plan.answer)
        return Response(answer.status, answer.body, answer.content_type, answer.headers, delay_seconds=delay)
    invoice_id = request.path[len(FILES_PATH) :]
    token = parse_qs(request.query).get("access_token", [""])[0]
    data = state.kaufland.file(invoice_id, token)
    if data is None:
        return NOT_FOUND
    if plan.drop:
        state.count_fault(DOWNLOAD_CUT)
        return Response(200, data, "application/pdf", cut_after=len(data) // 2, delay_seconds=delay)
    return Response(200, data, "application/pdf", delay_seconds=delay)
