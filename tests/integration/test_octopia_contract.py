"""Octopia keeps the marketplace contract (tests/contract/marketplace.py), against the built-in sandbox on
127.0.0.1: imports that run a while, then end."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from invoicesync.marketplaces.octopia import OctopiaMarketplace
from invoicesync.sandbox import Sandbox
from tests.contract.marketplace import MarketplaceContract, Subject, one_pdf_batch
from tests.oncerun import CREDENTIALS, start_sandbox

ORDER = "CONT1234"


def _client(base_url: str, token_url: str, secret: str) -> OctopiaMarketplace:
    return OctopiaMarketplace(
        base_url=base_url,
        token_url=token_url,
        seller_id=CREDENTIALS["seller_id"],
        client_id=CREDENTIALS["client_id"],
        read_secret=lambda: secret,
        request_deadline_seconds=10,
    )


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as running:
        yield running


@pytest.fixture
def subject(sandbox: Sandbox) -> Iterator[Subject]:
    client = _client(sandbox.base_url, sandbox.token_url, CREDENTIALS["client_secret"])
    yield Subject(
        marketplace=client,
        batch_for=one_pdf_batch,
        known_order=ORDER,
        refused=lambda: _client(sandbox.base_url, sandbox.token_url, "not-the-secret"),
        unreachable=lambda port: _client(
            f"http://127.0.0.1:{port}/seller/v2", f"http://127.0.0.1:{port}/token", "x"
        ),
        wait=time.sleep,  # the sandbox's imports run on its own wall clock
        now=time.monotonic,
    )
    client.close()


class TestOctopiaContract(MarketplaceContract):
    pass
