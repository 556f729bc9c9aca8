"""Fixtures shared by the core tests and the plugin distributions' tests.

Two tiers of OpenSearch: ``osmem`` (osmem-server, in memory, fast, cloned empty per test)
and ``real_opensearch_url`` (a real OpenSearch node, :mod:`tests.opensearch_node`, or the
cluster at ``OPENSEARCH_TEST_URL``). ``any_opensearch_url`` runs a test on both.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from osmem_server import OsmemServer

from tests import opensearch_node
from tests.installed import foreign_plugins
from tests.opensearch_node import Node


def pytest_configure(config: pytest.Config) -> None:
    """The tests assert what this repository's plugins do: a rule plugin installed beside
    them would change redactions and rule sets, so it is disabled for the whole run (and the
    processes the tests start, which inherit the environment).

    Tests stop the commands they start with SIGINT, as Ctrl-C does. A run started in the
    background of a non-interactive shell (``make test &``) has SIGINT ignored, and a Python
    program keeps an ignored SIGINT it inherits: ``watch`` would then never stop. So SIGINT
    gets its default handler back here, for this process and the ones it starts.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    foreign = foreign_plugins()
    if foreign:
        disabled = [n for n in os.environ.get("INDEXER_DISABLED_PLUGINS", "").split(",") if n]
        os.environ["INDEXER_DISABLED_PLUGINS"] = ",".join(dict.fromkeys([*disabled, *foreign]))


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


@pytest.fixture(scope="session")
def real_opensearch(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a real OpenSearch node for the session.

    ``OPENSEARCH_TEST_URL`` (``http://`` or ``https://user:password@host:port``, a CA the
    system trusts) when set; else a node started from ``build/opensearch`` (``make
    opensearch``), its data and logs in pytest's temporary folder (the last three runs'
    are kept); else the test is skipped with one line saying how to get one.
    """
    given = os.environ.get("OPENSEARCH_TEST_URL")
    if given:
        yield given.rstrip("/")
        return
    with _node(request) as node:
        yield node.url


@contextmanager
def _node(request: pytest.FixtureRequest, **options: Any) -> Iterator[Node]:
    """A node in a new folder under /tmp (its user must reach it: pytest's folders are
    private to this one), deleted after a session without failures, else kept for its logs."""
    if not opensearch_node.available():
        pytest.skip(opensearch_node.HOW_TO)
    folder = Path(tempfile.mkdtemp(prefix="transcript-indexer-opensearch-"))
    node = opensearch_node.start_node(folder, **options)
    try:
        yield node
    finally:
        node.stop()
        if request.session.testsfailed:
            print(f"\nOpenSearch node logs kept in {folder / 'logs'}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _empty(url: str) -> None:
    """Delete what tests create on a real node: indices, aliases and templates that do not
    start with a dot, and ISM policies."""
    with httpx.Client(base_url=url, timeout=30) as http:
        indices = http.get("/_cat/indices", params={"format": "json", "expand_wildcards": "all"}).json()
        names = [i["index"] for i in indices if not i["index"].startswith(".")]
        for start in range(0, len(names), 50):
            http.delete("/" + ",".join(names[start : start + 50])).raise_for_status()
        templates = http.get("/_index_template").json().get("index_templates", [])
        for template in templates:
            if not template["name"].startswith("."):
                http.delete(f"/_index_template/{template['name']}").raise_for_status()
        policies = http.get("/_plugins/_ism/policies")
        if policies.status_code == 200:
            for policy in policies.json().get("policies", []):
                http.delete(f"/_plugins/_ism/policies/{policy['_id']}")


@pytest.fixture
def real_opensearch_url(real_opensearch: str) -> Iterator[str]:
    """The real node, emptied after the test (a real cluster cannot be cloned)."""
    _empty(real_opensearch)
    yield real_opensearch
    _empty(real_opensearch)


@pytest.fixture(params=["osmem", "opensearch"])
def any_opensearch_url(request: pytest.FixtureRequest) -> str:
    """The test runs twice: on an osmem clone, then on the real node."""
    name = "opensearch_url" if request.param == "osmem" else "real_opensearch_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture(scope="session")
def secured_opensearch(request: pytest.FixtureRequest) -> Iterator[Node]:
    """A real node with the security plugin on: TLS with the project's own CA and the
    users, roles and role mappings of ``docker/opensearch/security``."""
    passwords = {
        "OPENSEARCH_ADMIN_PASSWORD": "Admin-Test-Pw-2026",
        "OPENSEARCH_INDEXER_PASSWORD": "Indexer-Test-Pw-2026",
        "OPENSEARCH_DASHBOARDS_PASSWORD": "Dashboards-Test-Pw-2026",
        "OPENSEARCH_ANALYST_PASSWORD": "Analyst-Test-Pw-2026",
    }
    with _node(request, secured=True, passwords=passwords) as node:
        yield node
