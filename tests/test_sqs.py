"""The SQS source against a real SQS-compatible server: moto's, started as a process.

Messages are Amazon EventBridge events as Genesys' integration delivers them (reference
§7), built from the emulator's notification frames.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import boto3
import httpx
import pytest
import trio
from opensearchpy import OpenSearch
from osmem_server import OsmemServer

from indexer import outbox as outbox_module
from indexer import sqs
from indexer.completion import Checkpoint, StreamItem, SubscriptionChange
from indexer.config import SqsSettings
from indexer.deadletter import DeadLetterStore
from indexer.demo import build_demo_corpus, worker_environment
from indexer.emulator import Emulator, EmulatorSettings
from indexer.emulator.eventbridge import eventbridge_event
from indexer.errors import ConfigError
from indexer.models import Envelope
from indexer.outbox import Outbox
from indexer.plugins import Plugins, get_plugin_manager
from indexer.sqs import follow_queue
from indexer.stats import Statistics
from indexer.worker import run_replay
from tests.conftest import sample
from tests.factories import document
from tests.harness import Arrivals, indexed_sources, live_config, start_worker
from tests.installed import PROJECT_ONLY
from tests.test_run_command import COMMAND, emulate, free_port, indexed_count, stop, wait_for

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def sqs_server() -> Iterator[str]:
    """moto's server (SQS over HTTP) on loopback, as its own process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/moto-api/").status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, 30, every_s=0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AWS.items():
        monkeypatch.setenv(key, value)


def _queue(url: str, name: str) -> tuple[Any, str]:
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=url)
    return client, client.create_queue(QueueName=name)["QueueUrl"]


def _counts(client: Any, queue_url: str) -> tuple[int, int]:
    """Messages visible, and in flight (received, not deleted)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]])


def _until_empty(client: Any, queue_url: str, timeout_s: float = 30) -> None:
    """Wait until the queue holds nothing, visible, in flight or delayed, twice 1 s apart
    (a producer's delayed message may still come)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    names.append("ApproximateNumberOfMessagesDelayed")

    def empty() -> bool:
        attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        return all(int(attributes.get(name, 0)) == 0 for name in names)

    wait_for(lambda: empty() and (time.sleep(1) is None) and empty(), timeout_s, every_s=0.2)
    assert _counts(client, queue_url) == (0, 0)


def eventbridge(frame: dict[str, Any] | str) -> str:
    """A notification frame as the EventBridge event Genesys' integration sends (reference §7)."""
    text = frame if isinstance(frame, str) else json.dumps(frame)
    return eventbridge_event(
        text, organization_id="32aa07aa-db1b-4987-abd0-9483601ec29d", rng=random.Random(7)
    )


async def test_messages_are_deleted_only_once_durable(sqs_server: str, aws: None, tmp_path: Path) -> None:
    """Received messages become envelopes (a body that is no notification is dead-lettered
    in the worker's store); they stay in flight, not deleted, until the detector reports
    the checkpoint after them reached, then they are gone from the queue."""
    client, queue_url = _queue(sqs_server, "durable")
    bodies = [
        eventbridge(sample(name)) for name in ("queue-conversation", "transcription", "transcription-ended")
    ]
    for body in [*bodies, "not an event"]:
        client.send_message(QueueUrl=queue_url, MessageBody=body)
    stats = Statistics()
    dead_letters = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    send, receive = trio.open_memory_channel[StreamItem](100)
    change_send, changes = trio.open_memory_channel[SubscriptionChange](10)
    settings = SqsSettings(
        queue_url=queue_url, endpoint_url=sqs_server, wait_time_s=1, visibility_timeout_s=30
    )
    received: list[Envelope] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: follow_queue(
                settings, send, changes, dead_letters, stats=stats, task_status=task_status
            )
        )
        with trio.fail_after(20):
            while True:
                item = await receive.receive()
                if isinstance(item, Checkpoint):
                    break
                assert isinstance(item, Envelope)
                received.append(item)
        assert len(received) + stats.messages["malformed"] == 4 and len(received) >= 1
        assert await trio.to_thread.run_sync(_counts, client, queue_url) == (0, 4), "in flight, not deleted"
        item.reached.set()
        await trio.to_thread.run_sync(_until_empty, client, queue_url)
        await change_send.send(SubscriptionChange("add", "c1"))  # no subscriptions: ignored
        nursery.cancel_scope.cancel()
    assert [e.topic_name for e in received] == [
        sample(n)["topicName"] for n in ("queue-conversation", "transcription", "transcription-ended")
    ]
    assert [d["kind"] for d in dead_letters.read()] == ["malformed_message"]
    assert stats.sqs_messages == 4 and stats.source == "sqs"


@attrs.define
class SharedSource:
    """:func:`follow_queue` reading a queue of its own as a replica sharing it (its
    ``shared`` outbox empty), and what a test sees of it."""

    client: Any
    queue_url: str
    stats: Statistics
    outbox: Outbox
    items: trio.MemoryReceiveChannel[StreamItem]

    async def send(self, body: dict[str, Any], *, rebuilding: Sequence[str] = ()) -> None:
        """Queue a message with ``body`` and take its batch's checkpoint, as the detector
        does when the batch tells this replica ``rebuilding`` conversations ended."""
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=eventbridge(body))
        with trio.fail_after(20):
            while not isinstance(item := await self.items.receive(), Checkpoint):
                pass
        item.rebuilding.update(rebuilding)
        item.reached.set()

    async def calls(self, count: int) -> None:
        """Until the source has made ``count`` more SQS calls (long polls, extensions)."""
        requests = self.stats.sqs_requests
        with trio.fail_after(20):
            while self.stats.sqs_requests < requests + count:  # noqa: ASYNC110 -- counted in the source's threads
                await trio.sleep(0.05)

    async def in_flight(self, expected: tuple[int, int]) -> None:
        """Until the queue holds ``expected`` (visible, in flight)."""
        await trio.to_thread.run_sync(
            lambda: wait_for(lambda: _counts(self.client, self.queue_url) == expected, 20, every_s=0.2)
        )

    async def until_empty(self) -> None:
        await trio.to_thread.run_sync(_until_empty, self.client, self.queue_url)


@asynccontextmanager
async def shared_source(
    sqs_server: str, tmp_path: Path, name: str, visibility_timeout_s: int = 60
) -> AsyncIterator[SharedSource]:
    """A :class:`SharedSource` on the new queue ``name``, stopped when the block ends."""
    client, queue_url = _queue(sqs_server, name)
    stats = Statistics()
    send, receive = trio.open_memory_channel[StreamItem](100)
    _, changes = trio.open_memory_channel[SubscriptionChange](10)
    settings = SqsSettings(
        queue_url=queue_url, endpoint_url=sqs_server, wait_time_s=1, visibility_timeout_s=visibility_timeout_s
    )
    (tmp_path / "outbox").mkdir()
    source = SharedSource(client, queue_url, stats, Outbox(tmp_path / "outbox"), receive)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: follow_queue(
                settings,
                send,
                changes,
                DeadLetterStore(tmp_path / "dead.ndjson", stats),
                stats=stats,
                shared=source.outbox,
                task_status=task_status,
            )
        )
        yield source
        nursery.cancel_scope.cancel()


async def test_a_batch_held_for_a_rebuild_does_not_hold_up_the_next(
    sqs_server: str, aws: None, tmp_path: Path
) -> None:
    """Replicas sharing the queue: a batch that told this replica a conversation ended stays
    in flight until that conversation's document is stored (post-call transcripts take
    minutes) and then delivered, while the batches after it are received and deleted as
    usual. A document stored but not yet delivered still holds its batch: a replica lost
    with its state directory then loses nothing."""
    async with shared_source(sqs_server, tmp_path, "held") as source:
        await source.send(sample("queue-conversation"), rebuilding=["ended-here"])
        for _ in range(3):
            await source.send(sample("transcription"))
        await source.in_flight((0, 1))  # the later batches deleted, the first in flight
        rebuilt = document("ended-here")
        await source.outbox.put(rebuilt)
        await source.outbox.put(document("another"))
        await source.outbox.remove(document("another"))
        await source.calls(2)  # two more long polls: time enough for a deletion to be made
        assert _counts(source.client, source.queue_url) == (0, 1), "stored, not delivered: still in flight"
        await source.outbox.remove(rebuilt)  # every sink has it
        await source.until_empty()
    assert source.stats.sqs_messages == 4


async def test_a_held_batch_is_released_once_all_its_conversations_are_delivered(
    sqs_server: str, aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that ended several conversations, rebuilt one after another (post-call
    transcripts come minutes apart, many other conversations stored meanwhile), is deleted
    once the last is delivered; waiting for a place among the held batches, it is kept in
    flight (its visibility extended) all the same."""
    monkeypatch.setattr(outbox_module, "DELIVERED_KEPT", 1)  # each store forgets the one before
    monkeypatch.setattr(sqs, "HELD_BATCHES", 1)
    ended = [f"ended-{n}" for n in range(8)]
    async with shared_source(sqs_server, tmp_path, "many", visibility_timeout_s=2) as source:
        await source.send(sample("queue-conversation"), rebuilding=ended)
        await source.send(sample("queue-conversation"), rebuilding=["second"])
        await source.calls(8)  # the second batch waits for the one place, twice its visibility timeout
        assert _counts(source.client, source.queue_url) == (0, 2), "both batches in flight"
        for conversation_id in [*ended, "second"]:  # stored and delivered one after another
            await source.outbox.put(document(conversation_id))
            await source.outbox.remove(document(conversation_id))
        await source.until_empty()
    assert source.stats.sqs_messages == 2, "neither came back"


async def test_a_message_whose_visibility_cannot_be_extended_is_a_warning(
    sqs_server: str, aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    """An extension SQS refuses for a message (its receipt handle is stale: deleted, or
    received again elsewhere) is one warning: the message comes back and is taken again."""
    client, queue_url = _queue(sqs_server, "stale")
    client.send_message(QueueUrl=queue_url, MessageBody="{}")
    messages = client.receive_message(QueueUrl=queue_url)["Messages"]
    client.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    queue = sqs._Queue(client, SqsSettings(queue_url=queue_url, endpoint_url=sqs_server), Statistics())
    await queue.extend(messages)
    assert "did not extend a message's visibility" in caplog.text


async def test_an_unknown_queue_is_one_line(sqs_server: str, aws: None, tmp_path: Path) -> None:
    stats = Statistics()
    send, _ = trio.open_memory_channel[StreamItem](1)
    _, changes = trio.open_memory_channel[SubscriptionChange](1)
    settings = SqsSettings(queue_url=f"{sqs_server}/123456789012/nope", endpoint_url=sqs_server)
    with pytest.raises(ConfigError, match=r"^sqs.queue_url \(INDEXER_SQS_QUEUE_URL\) .*/nope: "):
        await follow_queue(
            settings, send, changes, DeadLetterStore(tmp_path / "d.ndjson", stats), stats=stats
        )


async def test_the_worker_indexes_whole_conversations_from_eventbridge_events(
    sqs_server: str, aws: None, osmem: OsmemServer, tmp_path: Path
) -> None:
    """``source = "sqs"``: the emulator's conversations, as EventBridge events in an SQS
    queue (some twice, as SQS's at-least-once delivery does; neighbours swapped), each
    indexed once, whole and redacted; the queue is empty at the end."""
    count = 8
    corpus, injected = build_demo_corpus(count, seed=31, pii_share=1.0, digital_share=0.0, offset=5400)
    emulator = Emulator(corpus, EmulatorSettings(speed=50, start_interval_s=8, start_delay_s=600))
    client, queue_url = _queue(sqs_server, "genesys-events")
    rng = random.Random(31)
    arrivals = Arrivals(expected=count)
    stats = Statistics()
    with osmem.clone() as index, osmem.clone() as replay_index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
            frames = [
                f.text for s in emulator.scenarios.values() for f in sorted(s.events, key=lambda f: f.due_ms)
            ]
            bodies = [eventbridge(f) for f in frames]
            bodies += rng.sample(bodies, len(bodies) // 10)  # delivered twice
            for i in range(0, len(bodies) - 1, 7):
                bodies[i], bodies[i + 1] = bodies[i + 1], bodies[i]
            for start in range(0, len(bodies), 10):
                entries = [{"Id": str(n), "MessageBody": b} for n, b in enumerate(bodies[start : start + 10])]
                client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path, grace_period_s=1.0)
            config = attrs.evolve(
                config,
                source="sqs",
                sqs=SqsSettings(queue_url=queue_url, endpoint_url=sqs_server, wait_time_s=1),
            )
            start_worker(nursery, config, stats=stats, arrivals=arrivals)
            with trio.fail_after(90):
                await arrivals.done.wait()
            await trio.to_thread.run_sync(_until_empty, client, queue_url)
            # The same events as an EventBridge archive, replayed into another index.
            archive = tmp_path / "archive.ndjson"
            archive.write_text("".join(f"{body}\n" for body in bodies))
            replay_config = attrs.evolve(
                config,
                source="websocket",
                state_dir=str(tmp_path / "replay-state"),
                plugins={"opensearch": {"url": replay_index.url}},
            )
            await run_replay(replay_config, Plugins(get_plugin_manager(env=PROJECT_ONLY)), archive)
            nursery.cancel_scope.cancel()
        documents = await trio.to_thread.run_sync(indexed_sources, index.url)
        replayed = await trio.to_thread.run_sync(indexed_sources, replay_index.url)
    assert {c: [u["text"] for u in d["utterances"]] for c, d in replayed.items()} == {
        c: [u["text"] for u in d["utterances"]] for c, d in documents.items()
    }, "the archive replays into the same documents"
    assert len(documents) == count
    assert all(d["complete"] and d["source"] == "live" for d in documents.values())
    text = json.dumps(list(documents.values())).lower()
    assert not any(p.value.lower() in text for p in injected)
    assert stats.sqs_messages >= len(bodies) and stats.channels == 0
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"


def test_three_replicas_share_one_queue_and_one_is_killed(
    sqs_server: str, aws: None, osmem: OsmemServer, tmp_path: Path
) -> None:
    """The emulator sends its conversations as EventBridge events to one queue (a tenth
    twice, each delayed 0 to 1 s); three workers with ``sqs.shared`` read it with no
    affinity, and one is killed with SIGKILL mid-run and replaced. Every conversation is
    indexed once, whole: built from the Platform API by whichever replica saw it end; the
    killed replica's messages in flight reappear for the others after the visibility
    timeout. Its state directory is deleted and a fresh replica takes its place: an end
    message stays in flight until its document is delivered, so nothing it held is lost."""
    count = 12
    corpus, _ = build_demo_corpus(
        count, seed=41, pii_share=0.3, digital_share=0.0, transfer_share=0.0, offset=5600
    )
    client, queue_url = _queue(sqs_server, "shared")
    flags = (
        "--speed", "20", "--interval", "10", "--start-delay", "4", "--duplicate-rate", "0.1",
        "--sqs-queue-url", queue_url, "--sqs-endpoint-url", sqs_server, "--sqs-max-delay", "1",
    )  # fmt: skip
    env_aws = {**os.environ, **AWS}
    (tmp_path / "shared.toml").write_text(
        "[completion]\ngrace_period_s = 1.0\n[sqs]\nwait_time_s = 1\nvisibility_timeout_s = 8\n"
        "[plugins.opensearch]\nretention_days = 0\n"
    )
    workers: list[subprocess.Popen[str]] = []
    with emulate(corpus, tmp_path, *flags, env=env_aws) as ready, osmem.clone() as index:
        search = OpenSearch(hosts=[index.url])
        try:
            environments = []
            command = [*COMMAND, "run", "--config", str(tmp_path / "shared.toml")]
            for n in range(3):
                env = {
                    **env_aws,
                    **worker_environment(ready, opensearch_url=index.url, state_dir=tmp_path / f"state-{n}"),
                    "INDEXER_SOURCE": "sqs",
                    "INDEXER_SQS_QUEUE_URL": queue_url,
                    "INDEXER_SQS_ENDPOINT_URL": sqs_server,
                    "INDEXER_SQS_SHARED": "true",
                    "INDEXER_LOG_LEVEL": "WARNING",
                }
                environments.append(env)
                workers.append(subprocess.Popen(command, env=env, text=True))
            wait_for(lambda: indexed_count(search) >= count // 3, 120)
            workers[1].send_signal(signal.SIGKILL)  # mid-run, whatever it holds
            workers[1].wait()
            # lost with its state directory, and replaced by a fresh replica: what it had
            # stored but not delivered comes back with its end message, still in flight
            shutil.rmtree(tmp_path / "state-1")
            replacement = {
                **environments[1],
                **worker_environment(ready, opensearch_url=index.url, state_dir=tmp_path / "state-3"),
            }
            workers.append(subprocess.Popen(command, env=replacement, text=True))
            wait_for(lambda: indexed_count(search) >= count, 180)
            _until_empty(client, queue_url, 60)
        finally:
            stop(*workers)
        documents = indexed_sources(index.url)
    assert len(documents) == count, f"{len(documents)} of {count} indexed"
    assert all(d["complete"] and d["source"] == "post_call" for d in documents.values())
    assert sorted(len(d["utterances"]) for d in documents.values()) == sorted(len(c.turns) for c in corpus)
    assert _counts(client, queue_url) == (0, 0)
