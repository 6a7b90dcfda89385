"""Kaufland keeps the marketplace contract (tests/contract/marketplace.py), against the built-in Kaufland
simulator on 127.0.0.1: each upload answered at once, already final."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from invoicesync.marketplaces.kaufland import KauflandMarketplace
from invoicesync.sandbox import Sandbox, SandboxOptions
from tests.contract.marketplace import MarketplaceContract, Subject, one_pdf_batch

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
