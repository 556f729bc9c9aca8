"""Gap recovery: what the live stream missed comes from the analytics API and post-call transcripts."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from osmem_server import OsmemServer

from indexer.config import RecoverySettings
from indexer.demo import build_demo_corpus
from indexer.document import TranscriptDocument
from indexer.emulator import Emulator, EmulatorSettings
from indexer.emulator.scenario import build_scenario
from indexer.errors import GenesysError
from indexer.models import AnalyticsConversation, PostCallTranscript
from indexer.recovery import (
    CONCURRENCY,
    FindMissed,
    Rebuild,
    RecoveryRequest,
    recover_transcripts,
    utterances_from_post_call,
)
from indexer.serialization import structure
from indexer.stats import Statistics
from tests.harness import (
    Arrivals,
    indexed_sources,
    live_config,
    redacted_alike,
    start_worker,
    wait_until_ended,
)

# Cancelling the worker at the end of a test can interrupt recovery's HTTP requests, leaving
# their sockets to the garbage collector (see tests/test_stream.py for the fd measurement).
pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def test_post_call_transcript_becomes_utterances() -> None:
    """Phrases map to utterances: speaker from internal/external, decorated text, spoken order."""
    corpus, _ = build_demo_corpus(1, seed=1, pii_share=0.0)
    scenario = build_scenario(
        corpus[0], start_ms=1_700_000_000_000, rng=random.Random(2), organization_id="o"
    )
    utterances = utterances_from_post_call(structure(scenario.transcript_json(), PostCallTranscript))
    assert redacted_alike([u.text for u in utterances], [u.text for u in scenario.utterances])
    assert [u.speaker for u in utterances] == [u.speaker for u in scenario.utterances]
    assert [w.word for w in utterances[0].words] == scenario.utterances[0].raw.split()
    assert all(u.communication_id == scenario.communication_id for u in utterances)


async def test_conversations_before_the_worker_started_are_recovered(
    osmem: OsmemServer, tmp_path: Path
) -> None:
    """Calls that ended before the worker started are found by the look-back and indexed whole."""
    count = 6
    corpus, _ = build_demo_corpus(count, seed=4, pii_share=0.0, offset=1000)
    emulator = Emulator(corpus, EmulatorSettings(speed=200, start_interval_s=5, start_delay_s=0))
    arrivals = Arrivals(expected=count)
    stats = Statistics()
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
            await wait_until_ended(emulator, count)
            await trio.sleep(0.2)
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path)
            start_worker(nursery, config, stats=stats, arrivals=arrivals)
            with trio.fail_after(60):
                await arrivals.done.wait()
            nursery.cancel_scope.cancel()
        documents = indexed_sources(index.url)
    print(f"\nrecovered at start-up: {stats.recovered['missed']} of {count}")
    assert stats.recovered["missed"] == count
    for scenario in emulator.scenarios.values():
        document = documents[scenario.conversation_id]
        assert document["source"] == "post_call"
        assert redacted_alike(
            [u["text"] for u in document["utterances"]], [u.text for u in scenario.utterances]
        )
        played = sorted(p["purpose"] for p in scenario.snapshots[-1][1]["participants"])
        assert sorted(p["purpose"] for p in document["participants"]) == played  # ivr, acd, agent …
        assert document["queues"] == [{"id": i, "name": n} for i, n in scenario.queues]


async def test_socket_drops_and_channel_expiry_lose_no_utterance(osmem: OsmemServer, tmp_path: Path) -> None:
    """The server drops sockets and deletes channels mid-call; every transcript is still whole."""
    count = 10
    corpus, _ = build_demo_corpus(count, seed=8, pii_share=0.0, offset=2000)
    emulator = Emulator(corpus, EmulatorSettings(speed=25, start_interval_s=10, start_delay_s=0.5))
    arrivals = Arrivals(expected=count)
    stats = Statistics()
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path)
            start_worker(nursery, config, stats=stats, arrivals=arrivals)
            for fault in ("drop", "expire", "drop"):
                await trio.sleep(1.2)
                if fault == "drop":
                    emulator.drop_connections()
                else:
                    for channel_id in list(emulator.channels):
                        emulator.expire_channel(channel_id)
            with trio.fail_after(150):
                await arrivals.done.wait()
            nursery.cancel_scope.cancel()
        documents = indexed_sources(index.url)
    print(f"\nfaults: {stats.reconnects} reconnects, recovered {dict(stats.recovered)}")
    assert stats.reconnects >= 3
    for scenario in emulator.scenarios.values():
        document = documents[scenario.conversation_id]
        assert redacted_alike(
            [u["text"] for u in document["utterances"]], [u.text for u in scenario.utterances]
        ), document["source"]


async def test_a_socket_that_dies_silently_loses_no_trailing_utterance(
    osmem: OsmemServer, tmp_path: Path
) -> None:
    """The socket goes half-open between SESSION_ENDED and the call's last transcript message.

    The grace period closes the conversation before the watchdog notices the silence; once
    it does, the conversation (already indexed from the live stream) is reconciled with the
    post-call transcript, so the indexed document is whole.
    """
    corpus, _ = build_demo_corpus(1, seed=9, pii_share=0.0, offset=2106)
    emulator = Emulator(
        corpus,
        EmulatorSettings(speed=3, start_delay_s=3, heartbeat_interval_s=0.5, late_utterance_rate=1.0),
    )
    arrivals = Arrivals(expected=1)
    stats = Statistics()
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path)
            config = attrs.evolve(
                config, stream=attrs.evolve(config.stream, heartbeat_timeout_s=3.0, ping_interval_s=1.0)
            )
            start_worker(nursery, config, stats=stats, arrivals=arrivals)
            scenario = next(iter(emulator.scenarios.values()))
            session_ended_ms = next(
                frame.due_ms
                for frame in scenario.events
                if frame.body.get("status", {}).get("status") == "SESSION_ENDED"
            )
            # The last transcript message comes 3 s (simulated) after SESSION_ENDED.
            await trio.sleep_until(emulator.real_time_of(session_ended_ms + 1500))
            emulator.half_open_connections()
            with trio.fail_after(30):
                await arrivals.done.wait()
                while True:
                    documents = await trio.to_thread.run_sync(indexed_sources, index.url)
                    if documents.get(scenario.conversation_id, {}).get("source") == "post_call":
                        break
                    await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    document = documents[scenario.conversation_id]
    assert stats.completed["ended"] == 1 and stats.reconnects >= 1
    assert document["source"] == "post_call"
    assert redacted_alike([u["text"] for u in document["utterances"]], [u.text for u in scenario.utterances])


class FlakyAnalytics:
    """A client whose analytics query fails ``failures`` times (503 after retries), then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.queries = 0
        self.intervals: list[tuple[str, str]] = []  # of every query, answered or not

    async def ended_conversations(
        self, start: str, end: str, queue_ids: list[str]
    ) -> list[AnalyticsConversation]:
        self.queries += 1
        self.intervals.append((start, end))
        if self.queries <= self.failures:
            raise GenesysError("POST /api/v2/analytics/conversations/details/query: 503", status=503)
        return [AnalyticsConversation(conversation_id="c1")]

    async def conversation(self, conversation_id: str) -> Any:
        return {"id": conversation_id, "participants": []}

    async def post_call_transcript(self, conversation_id: str, communication_id: str) -> Any:
        return None


class UnreadyTranscripts:
    """A client serving ``scenarios`` as the Platform API does once they ended; the
    post-call transcripts of the ``unready`` ones are not ready (404) for as long as asked."""

    def __init__(self, scenarios: list[Any], unready: set[str]) -> None:
        self.scenarios = {s.conversation_id: s for s in scenarios}
        self.unready = unready

    async def conversation(self, conversation_id: str) -> Any:
        scenario = self.scenarios[conversation_id]
        return scenario.conversation_json(scenario.hangup_ms + 60_000)

    async def post_call_transcript(self, conversation_id: str, communication_id: str) -> Any:
        if conversation_id in self.unready:
            return None
        return structure(self.scenarios[conversation_id].transcript_json(), PostCallTranscript)


async def test_transcripts_not_ready_do_not_hold_up_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """More conversations than recovery's concurrency wait for their post-call transcripts
    (Genesys: minutes after the call): one whose transcript is ready is indexed at once,
    not after they are done waiting. The limit is on requests, not on waiting ones."""
    corpus, _ = build_demo_corpus(CONCURRENCY + 3, seed=5, pii_share=0, digital_share=0, transfer_share=0)
    rng = random.Random(5)
    scenarios = [
        build_scenario(c, start_ms=1_700_000_000_000 + i * 1000, rng=rng, organization_id="o")
        for i, c in enumerate(corpus)
    ]
    *waiting, ready = scenarios
    client = UnreadyTranscripts(scenarios, unready={s.conversation_id for s in waiting})
    async with trio.open_nursery() as nursery:
        settings = RecoverySettings(post_call_retry_s=10.0, post_call_wait_s=600.0)
        requests_send, documents = start_recovery(nursery, client, settings, Statistics())  # type: ignore[arg-type]
        for scenario in scenarios:
            await requests_send.send(Rebuild(scenario.conversation_id))
        with trio.fail_after(600):
            first = await documents.receive()
        assert first.conversation_id == ready.conversation_id
        assert first.source == "post_call" and first.utterances
        assert trio.current_time() < settings.post_call_retry_s
        nursery.cancel_scope.cancel()


def start_recovery(
    nursery: trio.Nursery,
    client: FlakyAnalytics | UnreadyTranscripts,
    settings: RecoverySettings,
    stats: Statistics,
) -> tuple[trio.MemorySendChannel[RecoveryRequest], trio.MemoryReceiveChannel[TranscriptDocument]]:
    """Recovery with ``client`` running in ``nursery``: where to send requests, where documents come."""
    requests_send, requests = trio.open_memory_channel[RecoveryRequest](1)
    documents_send, documents = trio.open_memory_channel[TranscriptDocument](10)
    nursery.start_soon(
        lambda: recover_transcripts(
            client,  # type: ignore[arg-type]
            requests,
            documents_send,
            settings=settings,
            stats=stats,
            queue_names={"q": "Billing"},
        )
    )
    return requests_send, documents


async def test_a_failing_gap_query_is_retried_until_it_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Recovery does not give a gap up after REST failures: it backs off and asks again."""
    client = FlakyAnalytics(failures=3)
    stats = Statistics()
    async with trio.open_nursery() as nursery:
        settings = RecoverySettings(post_call_retry_s=1.0, post_call_wait_s=0.0)
        requests_send, documents = start_recovery(nursery, client, settings, stats)
        await requests_send.send(FindMissed(0, 60_000, known=frozenset()))
        with trio.fail_after(60):
            document = await documents.receive()
        await requests_send.aclose()
    assert document.conversation_id == "c1"
    assert client.queries == 4 and stats.recovered["missed"] == 1
    assert trio.current_time() >= 1 + 2 + 4  # backed off 1, 2, 4 s between the tries


async def test_a_gap_query_reaches_back_to_earlier_gaps_within_the_lookback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A conversation that started in one gap and was still going on when it was queried
    is found by the next gap's query, if that gap ended within recovery.lookback_s: the
    query starts at the earlier gap's start, or lookback_s back. A conversation found
    again is not rebuilt again."""
    client = FlakyAnalytics(failures=0)
    stats = Statistics()
    hour = 3_600_000
    t0 = 10 * hour
    gaps = [
        (t0 - hour, t0),  # the look-back at start-up
        (t0 + hour // 2, t0 + hour // 2 + 60_000),
        (t0 + hour, t0 + hour + 60_000),
        (t0 + 3 * hour, t0 + 3 * hour + 60_000),
    ]
    async with trio.open_nursery() as nursery:
        settings = RecoverySettings(lookback_s=3600, post_call_wait_s=0)
        requests_send, documents = start_recovery(nursery, client, settings, stats)
        for start_ms, end_ms in gaps:
            await requests_send.send(FindMissed(start_ms, end_ms, known=frozenset()))
            await trio.testing.wait_all_tasks_blocked()
        await requests_send.aclose()
    starts = [datetime.fromisoformat(start.replace("Z", "+00:00")) for start, _ in client.intervals]
    assert [int(t.timestamp() * 1000) - t0 for t in starts] == [
        -hour,
        -hour // 2 + 60_000,  # lookback_s before this gap's end: the look-back gap reached into it
        hour // 2,  # the previous gap ended within lookback_s
        3 * hour,  # none did
    ]
    assert stats.recovered["missed"] == 1
    assert [d.conversation_id async for d in documents] == ["c1"]


@pytest.mark.parametrize("kind", ["no_longer_subscribed", "token_revoked", "subscription_changed"])
async def test_a_channel_that_loses_its_topics_is_replaced(
    kind: str, osmem: OsmemServer, tmp_path: Path
) -> None:
    """A system message says the channel gets nothing more (SDK ``SystemMessageSystemMessage``):
    a new channel takes over the whole topic set, the lost time is recovered, nothing is lost."""
    count = 8
    corpus, _ = build_demo_corpus(count, seed=21, pii_share=0.0, offset=3000)
    emulator = Emulator(corpus, EmulatorSettings(speed=25, start_interval_s=10, start_delay_s=0.5))
    arrivals = Arrivals(expected=count)
    stats = Statistics()
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(emulator.run)
            start_worker(nursery, live_config(base_url, corpus, {"url": index.url}, tmp_path), stats=stats,
                         arrivals=arrivals)  # fmt: skip
            with trio.fail_after(30):  # the message reaches the sockets open then: both of them
                while stats.sockets_open < 2:  # noqa: ASYNC110 -- counted by the worker, no event
                    await trio.sleep(0.05)
            emulator.system_message(kind)
            assert all(not c.topics for c in emulator.channels.values())
            with trio.fail_after(90):
                await arrivals.done.wait()
            nursery.cancel_scope.cancel()
        documents = indexed_sources(index.url)
    assert stats.handovers >= 1, "a new channel took over"
    for scenario in emulator.scenarios.values():
        document = documents[scenario.conversation_id]
        assert redacted_alike(
            [u["text"] for u in document["utterances"]], [u.text for u in scenario.utterances]
        )
        assert document["complete"] is True


async def test_a_rejected_transcription_topic_is_reported_and_recovered(
    osmem: OsmemServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With ignoreErrors, one rejected topic does not fail the subscription call: the queue
    topics stay, the refusal is logged, and the calls are indexed from the post-call transcript."""
    count = 3
    corpus, _ = build_demo_corpus(count, seed=22, pii_share=0.0, offset=3100)
    emulator = Emulator(corpus, EmulatorSettings(speed=25, start_interval_s=10, start_delay_s=1.0))
    emulator.faults.reject_topics = ["v2.conversations."]
    arrivals = Arrivals(expected=count)
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(emulator.run)
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path)
            start_worker(nursery, config, stats=Statistics(), arrivals=arrivals)
            with trio.fail_after(90):
                await arrivals.done.wait()
            nursery.cancel_scope.cancel()
        documents = indexed_sources(index.url)
    assert any("Rejected" in r.getMessage() for r in caplog.records)
    for scenario in emulator.scenarios.values():
        document = documents[scenario.conversation_id]
        assert document["source"] == "post_call" and document["complete"] is True
        assert redacted_alike(
            [u["text"] for u in document["utterances"]], [u.text for u in scenario.utterances]
        )


async def test_a_post_call_transcript_that_takes_hours_replaces_the_incomplete_document(
    osmem: OsmemServer, tmp_path: Path
) -> None:
    """Conversations rebuilt at start-up whose transcripts are refused (403) at first, then
    not ready for 10 minutes (simulated): indexed ``complete: false`` at once, then replaced,
    whole and at a higher version, by the follow-ups; the follow-up file empties."""
    count = 4
    corpus, _ = build_demo_corpus(count, seed=23, pii_share=0.0, offset=3200)
    emulator = Emulator(
        corpus, EmulatorSettings(speed=100, start_interval_s=5, start_delay_s=0, transcript_delay_s=600)
    )
    emulator.faults.transcript_status = 403
    stats = Statistics()
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(emulator.run)
            await wait_until_ended(emulator, count)
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path)
            recovery = RecoverySettings(
                post_call_wait_s=0.5, post_call_retry_s=0.2, post_call_follow_up_s=120,
                post_call_follow_up_max_interval_s=1.0,
            )  # fmt: skip
            start_worker(
                nursery, attrs.evolve(config, recovery=recovery), stats=stats, arrivals=Arrivals(count)
            )
            with trio.fail_after(30):
                while stats.recovered["follow_ups"] < count or len(indexed_sources(index.url)) < count:  # noqa: ASYNC110
                    await trio.sleep(0.1)  # the worker's counters and the node, another process
            first = indexed_sources(index.url)
            follow_ups = tmp_path / "state" / "post-call-follow-ups.json"
            assert len(json.loads(follow_ups.read_text())) == count
            emulator.faults.transcript_status = None  # now only not ready for a while (404)
            with trio.fail_after(60):
                while not all(d["complete"] for d in indexed_sources(index.url).values()):  # noqa: ASYNC110 -- the node, another process
                    await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
        documents = indexed_sources(index.url)
    assert stats.recovered["follow_ups_reconciled"] >= count
    assert json.loads(follow_ups.read_text()) == []
    for scenario in emulator.scenarios.values():
        before, after = first[scenario.conversation_id], documents[scenario.conversation_id]
        assert before["complete"] is False and before["utterances"] == []
        assert after["complete"] is True and after["source"] == "post_call"
        assert redacted_alike([u["text"] for u in after["utterances"]], [u.text for u in scenario.utterances])
        assert after["version"] > before["version"]
        assert after["queues"] == [{"id": i, "name": n} for i, n in scenario.queues]


async def test_digital_conversations_missed_in_a_gap_are_recovered(
    osmem: OsmemServer, tmp_path: Path
) -> None:
    """Messaging, chat and email conversations that ended before the worker started are found
    by the analytics query (their sessions carry the queue) and indexed with their messages."""
    count = 6
    corpus, _ = build_demo_corpus(count, seed=24, pii_share=0.0, offset=3300, digital_share=1.0)
    assert {c.media for c in corpus} >= {"message", "chat", "email"}
    emulator = Emulator(corpus, EmulatorSettings(speed=200, start_interval_s=5, start_delay_s=0))
    arrivals = Arrivals(expected=count)
    stats = Statistics()
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(emulator.run)
            await wait_until_ended(emulator, count)
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path)
            start_worker(nursery, config, stats=stats, arrivals=arrivals)
            with trio.fail_after(60):
                await arrivals.done.wait()
            nursery.cancel_scope.cancel()
        documents = indexed_sources(index.url)
    assert (
        stats.recovered["messages"] >= count
    )  # a late queue event may also close one live: the same document
    for scenario in emulator.scenarios.values():
        document = documents[scenario.conversation_id]
        assert document["media_type"] == scenario.media and document["source"] == "api"
        assert document["complete"] is True
        assert len(document["utterances"]) == len(scenario.utterances)
        assert [u["utterance_id"] for u in document["utterances"]] == [
            u.utterance_id for u in scenario.utterances
        ]
