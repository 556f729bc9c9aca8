"""The notification stream against the emulator: heartbeats, reconnects, handovers, the pool."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import httpx
import pytest
import stamina
import trio
import trio.testing

from indexer import stream
from indexer.completion import SubscriptionChange
from indexer.config import GenesysSettings, StreamSettings
from indexer.deadletter import DeadLetterStore
from indexer.emulator import CorpusConversation, Emulator, EmulatorSettings, Turn
from indexer.genesys import GenesysClient
from indexer.models import Channel, Envelope
from indexer.recovery import Gap
from indexer.stats import Statistics
from indexer.stream import GAP_PADDING_MS, ChannelPool, PooledChannel, follow_channels, open_pool
from tests.conftest import sample

# Cancelling the reader at teardown can interrupt an HTTP request of a subscription repair,
# leaving that connection's socket to the garbage collector (a ResourceWarning). It is not a
# leak while running: 20 forced reconnects in a row keep the process at 16 open fds.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

TOPIC = "v2.routing.queues.q1.conversations"
FRAME = json.dumps(sample("queue-conversation") | {"topicName": TOPIC})


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for a condition observed on a real server (checked every 10 ms, bounded)."""
    with trio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110 -- state changed by server replies, no event to wait on
            await trio.sleep(0.01)


@attrs.define
class Reader:
    emulator: Emulator
    client: GenesysClient
    pool: ChannelPool
    envelopes: trio.MemoryReceiveChannel[Envelope | Gap]
    changes: trio.MemorySendChannel[SubscriptionChange]
    stats: Statistics
    dead_letters: DeadLetterStore

    @property
    def channel(self) -> PooledChannel:
        return self.pool.channels[0]

    def connected(self, entry: PooledChannel) -> bool:
        """Whether the emulator has a socket on the channel ``entry`` holds now."""
        channel = self.emulator.channels.get(entry.channel.id)
        return channel is not None and channel.connection is not None

    def live(self, entry: PooledChannel) -> bool:
        """Connected, and the emulator's subscription list is what the pool wants."""
        channel = self.emulator.channels.get(entry.channel.id)
        return self.connected(entry) and channel is not None and list(channel.topics) == list(entry.topics)

    def held(self) -> set[str]:
        """The topics the emulator holds for the first channel."""
        return set(self.emulator.channels[self.channel.channel.id].topics)

    async def follow(self, numbers: range) -> None:
        """Follow conversations ``c<n>``; return once the first channel's list holds them."""
        for n in numbers:
            self.changes.send_nowait(SubscriptionChange("add", f"c{n}"))
        await wait_until(lambda: {f"v2.conversations.c{n}.transcription" for n in numbers} <= self.held())

    async def next_gap(self) -> Gap:
        """The next item, which must be a Gap."""
        with trio.fail_after(10):
            item = await self.envelopes.receive()
        assert isinstance(item, Gap), item
        return item

    async def next_envelope(self) -> Envelope:
        """The next envelope; a Gap here fails the test."""
        with trio.fail_after(10):
            item = await self.envelopes.receive()
        assert isinstance(item, Envelope), item
        return item


@asynccontextmanager
async def running_reader(
    tmp_path: Path,
    emulator_settings: EmulatorSettings | None = None,
    stream_settings: StreamSettings | None = None,
) -> AsyncIterator[Reader]:
    """An emulator and the stream following it; both stop when the block ends."""
    corpus = [CorpusConversation(turns=(Turn("customer", "hi"),))]
    emulator = Emulator(corpus, attrs.evolve(emulator_settings or EmulatorSettings(), start_delay_s=3600))
    # one channel unless a test asks for more (then the queue topic has one of its own)
    settings = stream_settings or StreamSettings(max_channels=1)
    async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
        url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
        client = GenesysClient(http, GenesysSettings(url, url, "emulator-client", "emulator-secret", ("q1",)))
        pool = await open_pool(client, (TOPIC,), settings)
        stats = Statistics()
        dead_letters = DeadLetterStore(tmp_path / "dead.ndjson", stats)
        send, receive = trio.open_memory_channel[Envelope | Gap](10_000)
        change_send, change_receive = trio.open_memory_channel[SubscriptionChange](10_000)
        await nursery.start(
            lambda task_status: follow_channels(
                client,
                pool,
                send,
                change_receive,
                settings=settings,
                stats=stats,
                dead_letters=dead_letters,
                task_status=task_status,
            )
        )
        yield Reader(emulator, client, pool, receive, change_send, stats, dead_letters)
        nursery.cancel_scope.cancel()


async def test_heartbeats_and_pings(tmp_path: Path) -> None:
    """Heartbeats arrive and every ping is answered with a pong (reference §3.6)."""
    async with running_reader(
        tmp_path,
        EmulatorSettings(heartbeat_interval_s=0.05),
        StreamSettings(ping_interval_s=0.05, heartbeat_timeout_s=5),
    ) as r:
        await wait_until(lambda: r.emulator.pings >= 3 and r.stats.messages["metadata"] >= 6)
        assert r.stats.reconnects == 0


async def test_reconnects_to_the_same_channel_after_a_drop(tmp_path: Path) -> None:
    """A dropped socket is reopened on the same channel; the time without it becomes a Gap."""
    async with running_reader(tmp_path) as r:
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC
        channel_id = r.channel.channel.id
        r.emulator.drop_connections()
        await wait_until(lambda: r.stats.reconnects == 1 and r.connected(r.channel))
        opened, over = await r.next_gap(), await r.next_gap()
        assert opened.end_ms is None  # reported as soon as the socket was lost
        assert over.start_ms == opened.start_ms and over.end_ms is not None and over.start_ms < over.end_ms
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC
        assert r.channel.channel.id == channel_id


async def test_a_vanished_channel_is_replaced_and_resubscribed(tmp_path: Path) -> None:
    """When HEAD says the channel is gone, a new one is created with every desired topic."""
    async with running_reader(tmp_path, stream_settings=StreamSettings(max_channels=2)) as r:
        r.changes.send_nowait(SubscriptionChange("add", "c1"))
        r.changes.send_nowait(SubscriptionChange("add", "c2"))
        await wait_until(lambda: r.stats.subscriptions == 3)
        entry = r.pool.placed["c1"]
        old = entry.channel.id
        r.emulator.expire_channel(old)
        await wait_until(lambda: entry.channel.id != old and r.live(entry))
        assert list(entry.topics) == [f"v2.conversations.c{n}.transcription" for n in (1, 2)]


async def test_queue_topics_have_a_channel_of_their_own(tmp_path: Path) -> None:
    """Control before data: transcription topics go to other channels while the pool can
    grow, so conversation events never wait behind transcripts on one socket; when it
    cannot, the queues' channel takes them too (``max_channels`` caps the topics, not
    this)."""
    async with running_reader(tmp_path, stream_settings=StreamSettings(max_channels=2)) as r:
        r.changes.send_nowait(SubscriptionChange("add", "c1"))
        await wait_until(lambda: r.stats.subscriptions == 2 and all(r.live(c) for c in r.pool.channels))
        assert [list(c.topics) for c in r.pool.channels] == [[TOPIC], ["v2.conversations.c1.transcription"]]
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC
    async with running_reader(tmp_path, stream_settings=StreamSettings(max_channels=1)) as r:
        r.changes.send_nowait(SubscriptionChange("add", "c1"))
        await wait_until(lambda: r.stats.subscriptions == 2 and r.live(r.channel))
        assert list(r.channel.topics) == [TOPIC, "v2.conversations.c1.transcription"]


async def test_silence_trips_the_watchdog(tmp_path: Path) -> None:
    """No frame within heartbeat_timeout_s: the socket is treated as dead and reopened."""
    async with running_reader(
        tmp_path,
        EmulatorSettings(heartbeat_interval_s=3600),
        StreamSettings(ping_interval_s=3600, heartbeat_timeout_s=0.2),
    ) as r:
        await wait_until(lambda: r.stats.reconnects >= 2)


async def test_a_socket_that_dies_silently_is_a_gap_from_its_last_frame(tmp_path: Path) -> None:
    """A half-open socket gets nothing, not even pongs: once the watchdog trips, a gap is
    reported at once, starting at the last frame read (padded), not when the loss was
    noticed; it is over when a socket is live again. What was published meanwhile is lost."""
    async with running_reader(
        tmp_path,
        EmulatorSettings(heartbeat_interval_s=0.1),
        StreamSettings(ping_interval_s=0.1, heartbeat_timeout_s=1.0, max_channels=1),
    ) as r:
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC
        r.emulator.half_open_connections()
        silent_from_ms = r.client.server_now_ms()
        r.emulator.publish(FRAME, TOPIC)
        opened = await r.next_gap()
        noticed_ms = r.client.server_now_ms()
        assert opened.end_ms is None
        assert noticed_ms - silent_from_ms >= 1000  # the watchdog's timeout
        # from the last frame read, which may be a heartbeat queued before the socket went silent
        assert opened.start_ms <= noticed_ms - 1000 - GAP_PADDING_MS
        over = await r.next_gap()
        assert over.start_ms == opened.start_ms and over.end_ms is not None and over.end_ms >= noticed_ms
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC
        assert r.envelopes.statistics().current_buffer_used == 0  # the frame sent while silent is gone


async def test_a_handover_waits_for_the_old_socket_to_answer(tmp_path: Path) -> None:
    """A handover of a half-open socket: the old socket does not answer the ping, so it is
    not closed as if it had been fine; its watchdog trips and the gap since its last frame
    is reported."""
    async with running_reader(
        tmp_path,
        EmulatorSettings(heartbeat_interval_s=3600),
        StreamSettings(channel_max_age_s=1.0, heartbeat_timeout_s=3.0, ping_interval_s=3600, max_channels=1),
    ) as r:
        old = r.channel.channel.id
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC
        r.emulator.half_open_connections()
        silent_from_ms = r.client.server_now_ms()
        opened, over = await r.next_gap(), await r.next_gap()
        assert opened.end_ms is None and opened.start_ms <= silent_from_ms - GAP_PADDING_MS
        assert over.start_ms == opened.start_ms and over.end_ms is not None
        assert r.stats.handovers == 1 and r.channel.channel.id != old and r.live(r.channel)


async def test_malformed_frames_are_kept_and_the_stream_goes_on(tmp_path: Path) -> None:
    """A bad frame is counted and dead-lettered with its reason; the next frame still arrives."""
    async with running_reader(tmp_path) as r:
        r.emulator.broadcast(
            '{"topicName": "v2.routing.queues.q1.conversations", "eventBody": {"participants": 5}}'
        )
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC
        assert r.stats.messages["malformed"] == 1
        (letter,) = r.dead_letters.read()
        assert letter["kind"] == "malformed_message" and "id" in letter["reason"]


async def test_frames_over_a_mebibyte_are_taken(tmp_path: Path) -> None:
    """A long turn makes frames over trio-websocket's 1 MiB default; they arrive, socket kept."""
    big = json.dumps(sample("queue-conversation") | {"topicName": TOPIC, "padding": "é" * 900_000})
    async with running_reader(tmp_path) as r:
        r.emulator.publish(big, TOPIC)
        r.emulator.publish(FRAME, TOPIC)
        assert len((await r.next_envelope()).event_body.id) > 0
        assert (await r.next_envelope()).topic_name == TOPIC
        assert r.stats.reconnects == 0 and r.stats.messages["too_large"] == 0


async def test_a_frame_over_the_limit_is_dead_lettered_and_the_socket_kept(tmp_path: Path) -> None:
    """Past stream.max_frame_bytes a frame is kept in the dead-letter store, whole, with its
    size; the socket stays open and the next frame arrives."""
    big = json.dumps(sample("queue-conversation") | {"topicName": TOPIC, "padding": "x" * 100_000})
    async with running_reader(tmp_path, stream_settings=StreamSettings(max_frame_bytes=64 * 1024)) as r:
        r.emulator.publish(big, TOPIC)
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC
        assert r.stats.messages["too_large"] == 1 and r.stats.reconnects == 0
        (letter,) = r.dead_letters.read()
        assert letter["kind"] == "frame_too_large" and letter["reason"].startswith(f"{len(big)} bytes")
        assert letter["payload"] == big


async def test_socket_closing_hands_over_before_the_old_socket_goes(tmp_path: Path) -> None:
    """socket_closing: a new channel is live before the old socket closes; nothing is missed (§3.7)."""
    async with running_reader(tmp_path) as r:
        old = r.channel.channel.id
        r.emulator.broadcast(json.dumps(sample("socket-closing")))
        r.emulator.publish(FRAME, TOPIC)  # still on the old socket, during the handover
        assert (await r.next_envelope()).topic_name == TOPIC
        # we closed it, the server did not; the server lets go of it just after its close reply
        await wait_until(lambda: r.stats.handovers == 1 and r.emulator.channels[old].connection is None)
        assert r.channel.channel.id != old and r.connected(r.channel)
        assert r.emulator.channels[r.channel.channel.id].topics == {TOPIC: None}
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC
        assert r.stats.reconnects == 0
        assert r.envelopes.statistics().current_buffer_used == 0  # no Gap: there was none


async def test_channels_are_replaced_before_their_token_expires(tmp_path: Path) -> None:
    """The emulator closes a channel when its token expires; the stream hands over first (§3.9)."""
    async with running_reader(tmp_path, EmulatorSettings(token_ttl_s=4)) as r:
        first = r.channel.channel.id
        await wait_until(lambda: r.stats.handovers >= 2)  # renewed at 2 s of every 4 s token
        assert r.stats.reconnects == 0
        await wait_until(lambda: first not in r.emulator.channels)  # gone with its token, after we left
        assert r.stats.reconnects == 0
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.next_envelope()).topic_name == TOPIC


async def test_channels_are_replaced_before_they_expire(tmp_path: Path) -> None:
    """``channel_max_age_s`` before the emulator's channel lifetime ends: no socket is ever lost."""
    async with running_reader(
        tmp_path, EmulatorSettings(channel_ttl_s=2.5), StreamSettings(channel_max_age_s=1.5)
    ) as r:
        await wait_until(lambda: r.stats.handovers >= 3)
        assert r.stats.reconnects == 0
        assert r.envelopes.statistics().current_buffer_used == 0


async def test_the_pool_grows_past_1000_topics_and_queues_what_does_not_fit(tmp_path: Path) -> None:
    """Topics spread over channels of at most 1,000; past max_channels they wait for room (§3.8)."""
    async with running_reader(tmp_path, stream_settings=StreamSettings(max_channels=2)) as r:
        for n in range(2100):
            r.changes.send_nowait(SubscriptionChange("add", f"c{n}"))
        await wait_until(lambda: r.stats.subscriptions == 2000 and r.stats.waiting_for_room == 101)
        assert r.stats.channels == 2
        await wait_until(lambda: all(r.live(c) for c in r.pool.channels))
        held = [r.emulator.channels[c.channel.id].topics for c in r.pool.channels]
        assert [len(t) for t in held] == [1000, 1000]
        for n in range(150):
            r.changes.send_nowait(SubscriptionChange("remove", f"c{n}"))
        await wait_until(lambda: r.stats.waiting_for_room == 0 and r.stats.subscriptions == 1951)
        await wait_until(lambda: all(r.live(c) for c in r.pool.channels))
        held = [r.emulator.channels[c.channel.id].topics for c in r.pool.channels]
        wanted = {TOPIC} | {f"v2.conversations.c{n}.transcription" for n in range(150, 2100)}
        assert set(held[0]) | set(held[1]) == wanted and len(held[0]) + len(held[1]) == len(wanted)
        topic = "v2.conversations.c2099.transcription"
        r.emulator.publish(json.dumps(sample("transcription") | {"topicName": topic}), topic)
        assert (await r.next_envelope()).topic_name == topic
        r.emulator.broadcast(json.dumps(sample("socket-closing")))  # both hand over at once
        await wait_until(lambda: r.stats.handovers == 2)
        assert len(r.emulator.channels) == 4 and r.stats.reconnects == 0  # none evicted


async def test_finished_conversations_leave_the_service_in_one_put(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dropped topic stays on the service (counted against the channel's room) until the
    channel's next PUT, within ``REMOVAL_INTERVAL_S``, which takes all such topics at
    once: a PUT sends the channel's whole list, so one per finished conversation was the
    worker's steady cost."""
    monkeypatch.setattr(stream, "REMOVAL_INTERVAL_S", 3.0)
    async with running_reader(tmp_path) as r:
        await r.follow(range(10))
        for n in range(5):
            r.changes.send_nowait(SubscriptionChange("remove", f"c{n}"))
        await wait_until(lambda: r.stats.subscriptions == 6)
        assert len(r.held()) == 11 and r.channel.room() == stream.TOPIC_LIMIT - 11  # not yet
        wanted = {TOPIC} | {f"v2.conversations.c{n}.transcription" for n in range(5, 10)}
        # The service holds the list before its answer reaches the reader: wait for both.
        await wait_until(lambda: r.held() == wanted and r.channel.stale == 0)
        assert r.channel.room() == stream.TOPIC_LIMIT - 6


async def test_stale_topics_count_until_a_put_has_dropped_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A PUT that fails leaves the dropped topics counted against the channel's room (the
    service still holds them), and is tried again: the room never exceeds the service's."""
    monkeypatch.setattr(stream, "REMOVAL_INTERVAL_S", 1.0)
    async with running_reader(tmp_path) as r:
        await r.follow(range(10))
        with stamina.set_testing(True, attempts=1):
            r.emulator.faults.rate_limit_count = 1  # the PUT's answer is a 429
            for n in range(5):
                r.changes.send_nowait(SubscriptionChange("remove", f"c{n}"))
            await wait_until(lambda: "not updated" in caplog.text)
            assert len(r.held()) == 11
            assert r.channel.stale == 5 and r.channel.room() == stream.TOPIC_LIMIT - 11
        wanted = {TOPIC} | {f"v2.conversations.c{n}.transcription" for n in range(5, 10)}
        # The service holds the list before its answer reaches the reader: wait for both.
        await wait_until(lambda: r.held() == wanted and r.channel.stale == 0)
        assert r.channel.room() == stream.TOPIC_LIMIT - 6


async def test_stale_room_is_taken_back_before_the_queues_channel_takes_transcripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the pool at max_channels and its transcripts' channel full of topics partly
    stale, a new conversation's topic waits for the PUT that drops the stale ones and goes
    there, not onto the queues' channel (control before data)."""
    monkeypatch.setattr(stream, "REMOVAL_INTERVAL_S", 3600.0)  # only a want of room sends the PUT
    async with running_reader(tmp_path, stream_settings=StreamSettings(max_channels=2)) as r:
        for n in range(1000):
            r.changes.send_nowait(SubscriptionChange("add", f"c{n}"))
        await wait_until(lambda: r.stats.subscriptions == 1001 and r.stats.channels == 2)
        control = next(c for c in r.pool.channels if c.control)
        data = next(c for c in r.pool.channels if not c.control)
        await wait_until(lambda: r.live(data))
        for n in range(10):
            r.changes.send_nowait(SubscriptionChange("remove", f"c{n}"))
        await wait_until(lambda: data.stale == 10)
        for n in range(1000, 1005):
            r.changes.send_nowait(SubscriptionChange("add", f"c{n}"))
        await wait_until(lambda: r.stats.subscriptions == 996)
        assert all(r.pool.placed[f"c{n}"] is data for n in range(1000, 1005))
        assert list(control.topics) == [TOPIC] and data.stale == 0
        await wait_until(lambda: r.live(data) and r.live(control))


async def test_reconnects_back_off_while_the_server_refuses(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Repeated failures wait longer and longer (jittered, capped), never a tight loop."""
    stats = Statistics()
    dead_letters = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    send, _ = trio.open_memory_channel[Envelope | Gap](1)
    _, changes = trio.open_memory_channel[SubscriptionChange](1)
    settings = GenesysSettings("http://127.0.0.1:9", "http://127.0.0.1:9", "id", "secret", ("q",))
    async with httpx.AsyncClient() as http:
        client = GenesysClient(http, settings)
        channel = Channel(id="ch", connect_uri="ws://127.0.0.1:9/channels/ch")
        pool = ChannelPool(channels=[PooledChannel(channel, {}, handover_at=1e9)], max_channels=1)
        with trio.move_on_after(120):
            await follow_channels(
                client, pool, send, changes, settings=StreamSettings(), stats=stats, dead_letters=dead_letters
            )
    # Backoff 0, then up to 0.5, 1, 2, 4 … 30 s: two minutes allow far fewer than a tight loop would.
    assert 3 <= stats.reconnects <= 40
