"""The OpenSearch sink over HTTP, on both tiers: osmem-server and a real OpenSearch node."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import attrs
import pytest
import trio
from opensearchpy import OpenSearch
from osmem_server import OsmemServer

from indexer.document import DocUtterance, QueueRef, RedactionSummary, TranscriptDocument
from indexer.errors import SinkError
from indexer.schemas import load_schema
from indexer_opensearch import OpenSearchSink, sink_from_settings


@pytest.fixture
def url(any_opensearch_url: str) -> str:
    return any_opensearch_url


def _document(conversation_id: str, version: int, text: str) -> TranscriptDocument:
    when = datetime(2025, 3, 19, 22, 0, tzinfo=UTC)
    utterance = DocUtterance(
        utterance_id="u1",
        communication_id="comm",
        speaker="customer",
        text=text,
        offset_ms=100,
        duration_ms=900,
        confidence=0.9,
        spoken_at=when,
    )
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
        text=text,
        complete=True,
        completion_reason="ended",
        redaction=RedactionSummary(rule_set_version="abc", counts={"CREDIT_CARD": 1}),
    )


async def test_open_installs_template_and_write_alias(url: str) -> None:
    """open() installs the index template for <alias>-* and creates <alias>-000001 as write index."""
    sink = OpenSearchSink(url=url, alias="calls")
    await sink.open()
    await sink.open()  # idempotent at every start-up
    client = OpenSearch(hosts=[url])
    template = client.indices.get_index_template(name="calls")["index_templates"][0]["index_template"]
    assert template["index_patterns"] == ["calls-*"]
    assert client.indices.get_alias(name="calls") == {
        "calls-000001": {"aliases": {"calls": {"is_write_index": True}}}
    }
    mapping = client.indices.get_mapping(index="calls-000001")["calls-000001"]["mappings"]
    assert mapping["properties"]["utterances"]["type"] == "nested"
    await sink.aclose()


async def test_versioned_writes_are_idempotent_and_never_go_back(url: str) -> None:
    """_id is the conversation id; the same or an older version is a conflict that counts as written."""
    sink = OpenSearchSink(url=url)
    await sink.open()
    (first,) = await sink.write([_document("c1", 100, "newer text")])
    assert first.ok and not first.conflict
    replay, stale = (
        await sink.write([_document("c1", 100, "newer text")]),
        await sink.write([_document("c1", 50, "older text")]),
    )
    assert replay[0].ok and replay[0].conflict
    assert stale[0].ok and stale[0].conflict
    (newer,) = await sink.write([_document("c1", 200, "newest text")])
    assert newer.ok and not newer.conflict
    client = OpenSearch(hosts=[url])
    stored = client.get(index="transcripts", id="c1")
    assert stored["_version"] == 200 and stored["_source"]["text"] == "newest text"
    client.indices.refresh(index="transcripts")
    assert client.count(index="transcripts")["count"] == 1
    await sink.aclose()


async def test_a_rejected_document_is_reported_not_raised(url: str) -> None:
    """A permanent per-document rejection comes back as that document's error; others are written."""
    sink = OpenSearchSink(url=url)
    await sink.open()
    # A value the strict mapping cannot take: a string where a long is mapped.
    bad = attrs.evolve(_document("bad", 1, "x"), duration_ms="soon")
    results = await sink.write([_document("good", 1, "fine"), bad])
    by_id = {r.conversation_id: r for r in results}
    assert by_id["good"].ok
    assert not by_id["bad"].ok and by_id["bad"].error is not None and by_id["bad"].error.startswith("400")
    await sink.aclose()


async def test_unreachable_opensearch_is_a_sink_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """open() and a write raise SinkError naming OPENSEARCH_URL when the node is down (the
    worker starts all the same, not ready: tests/test_run_command.py)."""
    import indexer_opensearch

    monkeypatch.setattr(indexer_opensearch, "RETRY_ATTEMPTS", 1)
    sink = OpenSearchSink(url="http://127.0.0.1:9")
    with pytest.raises(SinkError, match="OPENSEARCH_URL"):
        await sink.open()
    with pytest.raises(SinkError, match="OPENSEARCH_URL"):
        await sink.write([_document("c1", 1, "x")])


async def test_https_to_a_plain_http_node_is_named_as_such(osmem: OsmemServer) -> None:
    """An https:// URL to a node that speaks plain HTTP is not a certificate problem: the
    line says to use http://, not to set OPENSEARCH_CA_CERTS."""
    sink = OpenSearchSink(url=osmem.url.replace("http://", "https://"), retry_timeout_s=1.0)
    with pytest.raises(SinkError, match=r"does not answer in TLS \(a plain-HTTP server\?\): use http://"):
        await sink.write([_document("c1", 1, "x")])


def test_every_setting_reaches_the_sink() -> None:
    """Each [plugins.opensearch] key is applied, including the client's timeouts."""
    sink = sink_from_settings(
        {"url": "http://x:9200", "alias": "a", "username": "u", "password": "p", "verify_certs": False,
         "ca_certs": "/ca.pem", "chunk_size": 10, "max_chunk_bytes": 1000, "timeout_s": 0.5,
         "retry_timeout_s": 2},
        {},
    )  # fmt: skip
    assert (sink.alias, sink.username, sink.password, sink.verify_certs, sink.ca_certs) == (
        "a", "u", "p", False, "/ca.pem"
    )  # fmt: skip
    assert (sink.chunk_size, sink.max_chunk_bytes, sink.timeout_s, sink.retry_timeout_s) == (
        10,
        1000,
        0.5,
        2.0,
    )
    assert sink.client.transport.get_connection().timeout == 0.5


def test_settings_from_environment_win() -> None:
    """OPENSEARCH_* override [plugins.opensearch]; a missing URL names the setting."""
    sink = sink_from_settings(
        {"url": "http://toml:9200", "alias": "a"}, {"OPENSEARCH_URL": "https://env:9200"}
    )
    assert (sink.url, sink.alias) == ("https://env:9200", "a")
    with pytest.raises(Exception, match="OPENSEARCH_URL is not set"):
        sink_from_settings({}, {})
    with pytest.raises(Exception, match=r"plugins\.opensearch\.urll"):
        sink_from_settings({"urll": "x"}, {"OPENSEARCH_URL": "http://x"})


def test_template_maps_every_document_field() -> None:
    """The index template maps exactly the document's top-level fields (strict mapping)."""
    mapped = set(load_schema("index-template.json")["template"]["mappings"]["properties"])
    assert mapped == {f.name for f in attrs.fields(TranscriptDocument)}


def test_the_ism_policy_carries_the_settings() -> None:
    """schemas/ism-policy.json with the alias, rollover conditions and retention filled in."""
    sink = OpenSearchSink(url="http://127.0.0.1:9", alias="calls", retention_days=90, rollover_age="7d")
    policy = sink.policy()["policy"]
    hot, delete = policy["states"]
    assert hot["actions"] == [{"rollover": {"min_index_age": "7d", "min_primary_shard_size": "30gb"}}]
    assert hot["transitions"] == [{"state_name": "delete", "conditions": {"min_index_age": "90d"}}]
    assert delete["actions"] == [{"delete": {}}]
    assert policy["ism_template"][0]["index_patterns"] == ["calls-*"]


async def test_without_ism_the_sink_says_so_and_still_writes(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A cluster without the ISM plugin (osmem-server) gets one clear warning; writes go on."""
    sink = OpenSearchSink(url=url)
    await sink.open()
    assert "has no Index State Management" in caplog.text and "retention_days" in caplog.text
    assert all(r.ok for r in await sink.write([_document("c1", 1, "hello")]))
    template = OpenSearch(hosts=[url]).indices.get_index_template(name="transcripts")
    settings = template["index_templates"][0]["index_template"]["template"]["settings"]
    assert "rollover_alias" not in json.dumps(settings)  # a cluster without ISM rejects it


async def test_after_a_rollover_an_update_replaces_the_document_where_it_is(url: str) -> None:
    """The write alias moved to a new index: a newer version still replaces the old copy, no duplicate."""
    sink = OpenSearchSink(url=url)
    await sink.open()
    assert all(r.ok for r in await sink.write([_document("c1", 1, "first words")]))
    client = OpenSearch(hosts=[url])
    client.indices.create(index="transcripts-000002")
    client.indices.update_aliases(
        body={
            "actions": [
                {"add": {"index": "transcripts-000001", "alias": "transcripts", "is_write_index": False}},
                {"add": {"index": "transcripts-000002", "alias": "transcripts", "is_write_index": True}},
            ]
        }
    )
    assert all(r.ok for r in await sink.write([_document("c1", 2, "first words and more")]))
    assert all(r.ok for r in await sink.write([_document("c2", 1, "a new call")]))
    client.indices.refresh(index="transcripts")
    hits = client.search(index="transcripts", body={"query": {"match_all": {}}})["hits"]["hits"]
    assert sorted((h["_id"], h["_index"], h["_source"]["text"]) for h in hits) == [
        ("c1", "transcripts-000001", "first words and more"),
        ("c2", "transcripts-000002", "a new call"),
    ]


async def test_a_document_too_large_for_the_cluster_does_not_stall_the_rest(url: str) -> None:
    """A cluster (here a loopback proxy in front of the node, with a small
    ``http.max_content_length``) refuses a request with 413: the batch is split until the
    one document too large is alone; it is rejected for good, the others are written."""
    import httpx
    import trio
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    limit = 200_000
    refused = 0

    async def forward(request: Request) -> Response:
        nonlocal refused
        body = await request.body()
        if len(body) > limit:
            refused += 1
            return Response('{"error":"content too long"}', status_code=413, media_type="application/json")
        async with httpx.AsyncClient() as client:
            answer = await client.request(
                request.method,
                f"{url}{request.url.path}",
                params=request.query_params,
                content=body,
                headers={"content-type": request.headers.get("content-type", "application/json")},
            )
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "PUT", "POST", "HEAD", "DELETE"])])
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(lambda task_status: serve(app, config, task_status=task_status))  # type: ignore[arg-type]
        sink = OpenSearchSink(url=binds[0], alias="big")
        await sink.open()
        documents = [_document(f"c{i}", 1, "fine") for i in range(5)]
        documents.insert(2, _document("huge", 1, "words " * 60_000))
        results = await sink.write(documents)
        await sink.aclose()
        nursery.cancel_scope.cancel()
    by_id = {r.conversation_id: r for r in results}
    assert by_id["huge"].error is not None and "413" in by_id["huge"].error and not by_id["huge"].retry
    assert all(by_id[f"c{i}"].ok for i in range(5)) and refused >= 1
    client = OpenSearch(hosts=[url])
    client.indices.refresh(index="big")
    assert client.count(index="big")["count"] == 5


def test_the_templates_nested_limit_holds_the_largest_document() -> None:
    """The index template's nested-object limit is the one documents are built within:
    the utterance cap plus the participant cap."""
    from indexer.config import CompletionSettings
    from indexer.document import MAX_PARTICIPANTS, NESTED_OBJECTS_LIMIT

    settings = load_schema("index-template.json")["template"]["settings"]
    assert settings["mapping"]["nested_objects"]["limit"] == NESTED_OBJECTS_LIMIT
    assert CompletionSettings().max_utterances + MAX_PARTICIPANTS <= NESTED_OBJECTS_LIMIT


@pytest.fixture
def ism_url(real_opensearch_url: str) -> str:
    """The real node, if it has the index-management plugin."""
    plugins = {p["component"] for p in OpenSearch(hosts=[real_opensearch_url]).cat.plugins(format="json")}
    if "opensearch-index-management" not in plugins:
        pytest.skip(
            "the node has no ISM plugin (not served here): set OPENSEARCH_TEST_URL to a cluster with it"
        )
    return real_opensearch_url


async def test_ism_rolls_the_write_index_over_on_a_cluster_that_has_it(ism_url: str) -> None:
    """ISM installed with the policy, attached to the indices, and a rollover through the
    write alias actually happening (tiny ``rollover_size``, 1-minute job interval).

    Runs only where the cluster has the index-management plugin (``OPENSEARCH_TEST_URL``):
    the registry reachable here serves no ISM build for the node ``make opensearch`` fetches.
    """
    client = OpenSearch(hosts=[ism_url])
    client.cluster.put_settings(body={"transient": {"plugins.index_state_management.job_interval": 1}})
    try:
        sink = OpenSearchSink(url=ism_url, alias="ismcalls", rollover_size="1b", retention_days=30)
        await sink.open()
        assert all(r.ok for r in await sink.write([_document("c1", 1, "hello")]))
        explained = client.transport.perform_request("GET", "/_plugins/_ism/explain/ismcalls-000001")
        policy = explained["ismcalls-000001"]["index.plugins.index_state_management.policy_id"]
        assert policy == "ismcalls-retention"
        with trio.fail_after(600):  # the job runs every minute, with jitter; a rollover takes two runs
            while not client.indices.exists(index="ismcalls-000002"):  # noqa: ASYNC110 -- another process
                await trio.sleep(5)
        aliases = client.indices.get_alias(name="ismcalls")
        assert aliases["ismcalls-000002"]["aliases"]["ismcalls"]["is_write_index"] is True
        await sink.aclose()
    finally:
        client.cluster.put_settings(body={"transient": {"plugins.index_state_management.job_interval": None}})
