"""Fixtures shared by the core tests and the plugin distributions' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from osmem_server import OsmemServer


@pytest.fixture(scope="session")
def osmem() -> Iterator[OsmemServer]:
    """One in-memory OpenSearch-compatible node for the session (real HTTP on loopback)."""
    server = OsmemServer.start(japanese=False)
    try:
        yield server
    finally:
        server.close()
        if server.process.stdout is not None:
            server.process.stdout.close()


@pytest.fixture
def opensearch_url(osmem: OsmemServer) -> Iterator[str]:
    """The URL of a fresh, empty clone of the node for one test."""
    with osmem.clone() as clone:
        yield clone.url
