"""The notification reader against the emulator: heartbeats, pings, reconnects, bad frames."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import httpx
import pytest
import trio
import trio.testing

from indexer.config import GenesysSettings, StreamSettings
from indexer.deadletter import DeadLetterStore
from indexer.emulator import CorpusConversation, Emulator, EmulatorSettings, Turn
from indexer.genesys import GenesysClient
from indexer.models import Channel, Envelope
from indexer.stats import Statistics
from indexer.stream import ChannelState, open_channel, read_notifications
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
    state: ChannelState
    envelopes: trio.MemoryReceiveChannel[Envelope]
    stats: Statistics
    dead_letters: DeadLetterStore


@asynccontextmanager
async def running_reader(
    tmp_path: Path,
    emulator_settings: EmulatorSettings | None = None,
    stream_settings: StreamSettings | None = None,
) -> AsyncIterator[Reader]:
    """An emulator and a reader connected to it; both stop when the block ends."""
    corpus = [CorpusConversation(turns=(Turn("customer", "hi"),))]
    emulator = Emulator(corpus, attrs.evolve(emulator_settings or EmulatorSettings(), start_delay_s=3600))
    async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
        url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
        client = GenesysClient(http, GenesysSettings(url, url, "emulator-client", "emulator-secret", ("q1",)))
        state = await open_channel(client, (TOPIC,))
        stats = Statistics()
        dead_letters = DeadLetterStore(tmp_path / "dead.ndjson", stats)
        send, receive = trio.open_memory_channel[Envelope](100)
        await nursery.start(
            lambda task_status: read_notifications(
                client,
                state,
                send,
                settings=stream_settings or StreamSettings(),
                stats=stats,
                dead_letters=dead_letters,
                task_status=task_status,
            )
        )
        yield Reader(emulator, client, state, receive, stats, dead_letters)
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
    """A dropped socket is reopened on the same channel; events flow again."""
    async with running_reader(tmp_path) as r:
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.envelopes.receive()).topic_name == TOPIC
        channel_id = r.state.channel.id
        r.emulator.drop_connections()
        await wait_until(
            lambda: r.stats.reconnects == 1 and r.emulator.channels[channel_id].connection is not None
        )
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.envelopes.receive()).topic_name == TOPIC
        assert r.state.channel.id == channel_id


async def test_a_vanished_channel_is_replaced_and_resubscribed(tmp_path: Path) -> None:
    """When HEAD says the channel is gone, a new one is created with every desired topic."""
    async with running_reader(tmp_path) as r:
        r.state.conversations.add("c1")
        old = r.state.channel.id
        r.emulator.drop_connections()
        del r.emulator.channels[old]
        await wait_until(
            lambda: (
                r.state.channel.id != old and r.emulator.channels[r.state.channel.id].connection is not None
            )
        )
        assert r.emulator.channels[r.state.channel.id].topics == [TOPIC, "v2.conversations.c1.transcription"]


async def test_silence_trips_the_watchdog(tmp_path: Path) -> None:
    """No frame within heartbeat_timeout_s: the socket is treated as dead and reopened."""
    async with running_reader(
        tmp_path,
        EmulatorSettings(heartbeat_interval_s=3600),
        StreamSettings(ping_interval_s=3600, heartbeat_timeout_s=0.2),
    ) as r:
        await wait_until(lambda: r.stats.reconnects >= 2)


async def test_malformed_frames_are_kept_and_the_stream_goes_on(tmp_path: Path) -> None:
    """A bad frame is counted and dead-lettered with its reason; the next frame still arrives."""
    async with running_reader(tmp_path) as r:
        r.emulator.broadcast(
            '{"topicName": "v2.routing.queues.q1.conversations", "eventBody": {"participants": 5}}'
        )
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.envelopes.receive()).topic_name == TOPIC
        assert r.stats.messages["malformed"] == 1
        (letter,) = r.dead_letters.read()
        assert letter["kind"] == "malformed_message" and "id" in letter["reason"]


async def test_socket_closing_reconnects(tmp_path: Path) -> None:
    """v2.system.socket_closing makes the reader open a new socket (reference §3.7)."""
    async with running_reader(tmp_path) as r:
        r.emulator.broadcast(json.dumps(sample("socket-closing")))
        await wait_until(lambda: r.stats.reconnects == 1)
        await wait_until(lambda: r.emulator.channels[r.state.channel.id].connection is not None)
        r.emulator.publish(FRAME, TOPIC)
        assert (await r.envelopes.receive()).topic_name == TOPIC


async def test_reconnects_back_off_while_the_server_refuses(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Repeated failures wait longer and longer (jittered, capped), never a tight loop."""
    stats = Statistics()
    dead_letters = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    send, _ = trio.open_memory_channel[Envelope](1)
    settings = GenesysSettings("http://127.0.0.1:9", "http://127.0.0.1:9", "id", "secret", ("q",))
    async with httpx.AsyncClient() as http:
        client = GenesysClient(http, settings)
        state = ChannelState(
            channel=Channel(id="ch", connect_uri="ws://127.0.0.1:9/channels/ch"), fixed_topics=()
        )
        with trio.move_on_after(120):
            await read_notifications(
                client, state, send, settings=StreamSettings(), stats=stats, dead_letters=dead_letters
            )
    # Backoff 0, then up to 0.5, 1, 2, 4 … 30 s: two minutes allow far fewer than a tight loop would.
    assert 3 <= stats.reconnects <= 40
