"""The security plugin on a real node, configured from ``docker/opensearch/security``.

TLS with the project's own CA (``docker/setup/security.py``); the users and roles the
deployment ships. Proves with real requests that the worker's user can do everything the
sink does and nothing wider, that analysts search transcripts and cannot read the audit
index, and that the sink verifies the node's certificate.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import AuthorizationException

from indexer.document import DocUtterance, QueueRef, RedactionSummary, TranscriptDocument
from indexer.errors import SinkError
from indexer_opensearch import OpenSearchSink
from tests.opensearch_node import Node

pytestmark = pytest.mark.e2e


def _document(conversation_id: str, version: int = 1) -> TranscriptDocument:
    when = datetime(2026, 3, 19, 22, 0, tzinfo=UTC)
    utterance = DocUtterance("u1", "comm", "customer", "please cancel my plan", 100, 900, 0.9, when)
    return TranscriptDocument(
        conversation_id=conversation_id,
        version=version,
        started_at=when,
        ended_at=when,
        duration_ms=0,
        queues=(QueueRef("q1", "Billing"),),
        direction="inbound",
        language="en-US",
        participants=(),
        utterances=(utterance,),
        text=utterance.text,
        complete=True,
        completion_reason="ended",
        redaction=RedactionSummary(rule_set_version="abc", counts={}),
    )


def _client(node: Node, user: str, variable: str) -> OpenSearch:
    return OpenSearch(
        hosts=[node.url],
        http_auth=(user, node.passwords[variable]),
        verify_certs=True,
        ca_certs=str(node.ca_certs),
    )


def _sink(node: Node, **changes: object) -> OpenSearchSink:
    settings: dict[str, object] = {
        "url": node.url,
        "username": "transcript_indexer",
        "password": node.passwords["OPENSEARCH_INDEXER_PASSWORD"],
        "ca_certs": str(node.ca_certs),
        "retry_timeout_s": 2.0,
    }
    return OpenSearchSink(**{**settings, **changes})  # type: ignore[arg-type]


async def test_the_workers_user_does_what_the_sink_does(secured_opensearch: Node) -> None:
    """Template, write alias, audit index, bulk to both, the multi-get after a rollover,
    and the rollover itself (what ISM does with the installing user's roles)."""
    sink = _sink(secured_opensearch)
    await sink.open()
    assert all(r.ok and not r.conflict for r in await sink.write([_document("s1"), _document("s2")]))
    indexer = _client(secured_opensearch, "transcript_indexer", "OPENSEARCH_INDEXER_PASSWORD")
    rolled = indexer.indices.rollover(alias="transcripts")
    assert rolled["rolled_over"] and rolled["new_index"] == "transcripts-000002"
    assert all(r.ok for r in await sink.write([_document("s1", 2), _document("s3")]))
    admin = _client(secured_opensearch, "admin", "OPENSEARCH_ADMIN_PASSWORD")
    admin.indices.refresh(index="transcripts,transcripts_audit")
    body = {"query": {"match_all": {}}, "version": True}
    hits = admin.search(index="transcripts", body=body)["hits"]["hits"]
    assert sorted((h["_id"], h["_index"], h["_version"]) for h in hits) == [
        ("s1", "transcripts-000001", 2),  # replaced where it was, not copied behind the alias
        ("s2", "transcripts-000001", 1),
        ("s3", "transcripts-000002", 1),
    ]
    assert admin.count(index="transcripts_audit")["count"] == 3
    await sink.aclose()


@pytest.mark.parametrize(
    "request_",
    [
        lambda c: c.indices.create(index="other-index"),
        lambda c: c.index(index="other-index", body={"x": 1}),
        lambda c: c.search(index=".opendistro_security"),
        lambda c: c.cluster.put_settings(body={"persistent": {"cluster.routing.allocation.enable": "all"}}),
        lambda c: c.indices.delete(index="other-index"),
        lambda c: c.transport.perform_request("GET", "/_plugins/_security/api/internalusers"),
    ],
    ids=[
        "create-other-index",
        "write-other-index",
        "read-security-index",
        "cluster-settings",
        "delete-other-index",
        "security-api",
    ],
)
async def test_the_workers_user_can_do_nothing_wider(secured_opensearch: Node, request_: object) -> None:
    """Outside ``transcripts*`` the worker's user is refused. (Index templates are cluster
    permissions in OpenSearch: ``cluster_manage_index_templates`` cannot be limited to a
    pattern, so that one is as wide as the product allows.)"""
    _client(secured_opensearch, "admin", "OPENSEARCH_ADMIN_PASSWORD").indices.create(
        index="other-index", params={"ignore": 400}
    )
    indexer = _client(secured_opensearch, "transcript_indexer", "OPENSEARCH_INDEXER_PASSWORD")
    with pytest.raises(AuthorizationException):
        request_(indexer)  # type: ignore[operator]


async def test_analysts_search_transcripts_and_not_the_audit_index(secured_opensearch: Node) -> None:
    sink = _sink(secured_opensearch)
    await sink.open()
    assert all(r.ok for r in await sink.write([_document("a1")]))
    await sink.aclose()
    _client(secured_opensearch, "admin", "OPENSEARCH_ADMIN_PASSWORD").indices.refresh(index="transcripts")
    analyst = _client(secured_opensearch, "analyst", "OPENSEARCH_ANALYST_PASSWORD")
    found = analyst.search(index="transcripts", body={"query": {"match": {"text": "cancel"}}})["hits"]["hits"]
    assert "a1" in {h["_id"] for h in found}
    with pytest.raises(AuthorizationException):
        analyst.search(index="transcripts_audit")
    with pytest.raises(AuthorizationException):
        analyst.index(index="transcripts", id="a1", body={"text": "changed"})


async def test_the_sink_verifies_the_nodes_certificate(secured_opensearch: Node) -> None:
    """Without the project's CA the node's certificate is not trusted: one line naming
    OPENSEARCH_CA_CERTS, no retry storm, nothing written."""
    sink = _sink(secured_opensearch, ca_certs=None)
    with pytest.raises(SinkError, match=r"TLS verification failed; set OPENSEARCH_CA_CERTS") as error:
        await sink.write([_document("x1")])
    assert "\n" not in str(error.value)
    wrong_password = _sink(secured_opensearch, password="not-the-password")
    with pytest.raises(SinkError, match=r"^OpenSearch at OPENSEARCH_URL: 401"):
        await wrong_password.write([_document("x1")])
