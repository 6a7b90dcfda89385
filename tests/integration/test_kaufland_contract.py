"""Kaufland keeps the marketplace contract (tests/contract/marketplace.py), against the built-in Kaufland
simulator on 127.0.0.1: each upload answered at once, already final."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from invoicesync.marketplaces.kaufland import KauflandMarketplace
from invoicesync.model import Batch, BatchItem, Endpoint
from invoicesync.sandbox import Sandbox, SandboxOptions
from tests.badfiles import sample_pdf
from tests.contract.marketplace import MarketplaceContract, Subject

ORDER = "MCONT01"
CLIENT_KEY = "kaufland-test-client"
SECRET_KEY = "kaufland-test-secret-0123456789abcdef"


def kaufland_sandbox(**options: object) -> Sandbox:
    return Sandbox.start(
        SandboxOptions(kaufland_client_key=CLIENT_KEY, kaufland_secret_key=SECRET_KEY, **options)  # type: ignore[arg-type]  # test options by name
    )


def kaufland_client(base_url: str, secret: str = SECRET_KEY, **options: object) -> KauflandMarketplace:
    return KauflandMarketplace(
        base_url=base_url,
        client_key=CLIENT_KEY,
        read_secret=lambda: secret,
        request_deadline_seconds=10,
        **options,  # type: ignore[arg-type]  # test options by name
    )


def one_pdf_batch(order: str, folder: Path, data: bytes | None = None) -> Batch:
    path = folder / f"{uuid.uuid4().hex[:8]}__{order}.pdf"
    path.write_bytes(sample_pdf(order) if data is None else data)
    item = BatchItem(
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        item_id=uuid.uuid4().hex[:16],
        order_id=order,
        upload_name=f"{order}.pdf",
        path=str(path),
        size=path.stat().st_size,
        content_type="application/pdf",
    )
    return Batch(
        batch_id=item.item_id,
        bundle_name=f"contract-{uuid.uuid4().hex[:12]}",
        endpoint=Endpoint.ORDER_DOCUMENTS,
        items=(item,),
        order_id=order,
    )


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with kaufland_sandbox() as running:
        yield running


@pytest.fixture
def subject(sandbox: Sandbox) -> Iterator[Subject]:
    client = kaufland_client(sandbox.kaufland_url)
    yield Subject(
        marketplace=client,
        batch_for=one_pdf_batch,
        known_order=ORDER,
        refused=lambda: kaufland_client(sandbox.kaufland_url, secret="not-the-secret"),
        unreachable=lambda port: kaufland_client(f"http://127.0.0.1:{port}/kaufland/v2"),
        wait=time.sleep,
        now=time.monotonic,
    )
    client.close()


class TestKauflandContract(MarketplaceContract):
    pass
