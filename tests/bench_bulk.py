"""Bulk throughput of the OpenSearch sink: a real node beside osmem-server, in one run.

``make bench-bulk`` (after ``make opensearch``; or with ``OPENSEARCH_TEST_URL``). Indexes the
demo's conversations (chitchat-dataset turns with Faker PII, as documents the worker
builds: utterances with words) through :class:`indexer_opensearch.OpenSearchSink` in the
worker's batches of 1,000, and prints per tier: documents/s, MB/s of document JSON,
client-side CPU per document (this process, all threads), and the share of wall time the
sink spends waiting on the node (wall minus client CPU). The ceiling measured in the same
run: the same documents as one pre-encoded ``_bulk`` body per batch sent with httpx (no
sink, no versions lookup, no audit records), so the sink's own cost is the difference.

Not a test: it asserts nothing and prints its figures.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import httpx
import trio
from osmem_server import OsmemServer

from indexer.demo import build_demo_corpus
from indexer.document import TranscriptDocument
from indexer.serialization import unstructure
from indexer.tracker import ConversationState
from indexer_opensearch import OpenSearchSink
from tests import opensearch_node
from tests.factories import conversation, transcription, utterance

COUNT = int(os.environ.get("BENCH_CONVERSATIONS", "2000"))
BATCH = 1000


def documents(count: int) -> list[TranscriptDocument]:
    """The demo corpus as the documents the worker would index."""
    corpus, _ = build_demo_corpus(count, seed=11, pii_share=0.25)
    built = []
    for n, played in enumerate(corpus):
        conversation_id = f"bench-{n:06d}"
        state = ConversationState(conversation_id=conversation_id, first_event_at=0, last_event_at=0)
        results = [
            utterance(
                f"u{i}",
                turn.text,
                1000 * (i + 1),
                channel="EXTERNAL" if turn.speaker == "customer" else "INTERNAL",
            )
            for i, turn in enumerate(played.turns)
        ]
        state.apply_transcription(transcription(*results, conversation=conversation_id).event_body, 0)  # type: ignore[arg-type]
        state.apply_conversation(conversation(ended=True, conversation_id=conversation_id).event_body, 0)  # type: ignore[arg-type]
        built.append(attrs.evolve(state.to_document("ended", {}), version=1_700_000_000_000 + n))
    return built


@attrs.frozen
class Figures:
    seconds: float
    cpu_seconds: float
    count: int
    megabytes: float

    def row(self, name: str) -> str:
        waiting = max(0.0, 1 - self.cpu_seconds / self.seconds)
        return (
            f"| {name} | {self.count / self.seconds:,.0f} | {self.megabytes / self.seconds:.1f} | "
            f"{1e6 * self.cpu_seconds / self.count:,.0f} | {waiting:.0%} |"
        )


def through_sink(url: str, docs: list[TranscriptDocument], megabytes: float) -> Figures:
    async def run() -> None:
        sink = OpenSearchSink(url=url, alias="bench", retention_days=0)
        await sink.open()
        for start in range(0, len(docs), BATCH):
            results = await sink.write(docs[start : start + BATCH])
            assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        await sink.aclose()

    wall, cpu = time.perf_counter(), time.process_time()
    trio.run(run)
    return Figures(time.perf_counter() - wall, time.process_time() - cpu, len(docs), megabytes)


def ceiling(url: str, docs: list[TranscriptDocument], megabytes: float) -> Figures:
    bodies = []
    for start in range(0, len(docs), BATCH):
        lines = []
        for d in docs[start : start + BATCH]:
            lines.append(json.dumps({"index": {"_index": "ceiling", "_id": d.conversation_id}}))
            lines.append(json.dumps(unstructure(d), ensure_ascii=False))
        bodies.append(("\n".join(lines) + "\n").encode())
    wall, cpu = time.perf_counter(), time.process_time()
    with httpx.Client(base_url=url, timeout=300) as http:
        http.put("/ceiling", json={"settings": {"mapping": {"nested_objects": {"limit": 12000}}}})
        for body in bodies:
            answer = http.post("/_bulk", content=body, headers={"content-type": "application/x-ndjson"})
            assert answer.status_code == 200 and not answer.json()["errors"], answer.text[:300]
    return Figures(time.perf_counter() - wall, time.process_time() - cpu, len(docs), megabytes)


@contextmanager
def real_node() -> Iterator[str | None]:
    given = os.environ.get("OPENSEARCH_TEST_URL")
    if given:
        yield given
        return
    if not opensearch_node.available():
        print(opensearch_node.HOW_TO, file=sys.stderr)
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="transcript-indexer-bench-"))
    node = opensearch_node.start_node(folder)
    try:
        yield node.url
    finally:
        node.stop()


def main() -> int:
    docs = documents(COUNT)
    megabytes = sum(len(json.dumps(unstructure(d), ensure_ascii=False).encode()) for d in docs) / 1e6
    utterances = sum(len(d.utterances) for d in docs)
    print(f"{len(docs)} documents, {utterances} utterances, {megabytes:.1f} MB of JSON; batches of {BATCH}")
    rows: list[tuple[str, Figures]] = []
    osmem = OsmemServer.start(japanese=False)
    try:
        rows.append(("osmem-server: sink", through_sink(osmem.url, docs, megabytes)))
        rows.append(("osmem-server: ceiling (raw _bulk)", ceiling(osmem.url, docs, megabytes)))
    finally:
        osmem.close()
    with real_node() as url:
        if url is not None:
            rows.append((f"OpenSearch {opensearch_node.VERSION}: sink", through_sink(url, docs, megabytes)))
            rows.append(
                (f"OpenSearch {opensearch_node.VERSION}: ceiling (raw _bulk)", ceiling(url, docs, megabytes))
            )
    print("| tier | documents/s | MB/s | client CPU µs/document | waiting on the node |")
    print("| --- | --- | --- | --- | --- |")
    for name, figures in rows:
        print(figures.row(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
