"""The notification stream: WebSocket reader and subscription manager (reference §3).

:func:`read_notifications` is the producer of the flow. It connects to the channel's
``connectUri`` (no auth on the socket, reference §3.4), sends ``{"message":"ping"}``
every ``ping_interval_s``, treats ``heartbeat_timeout_s`` without any frame as a dead
socket, and parses every frame. Conversation and transcription envelopes go downstream;
a frame that cannot be parsed is counted and dead-lettered. When the socket drops or
``v2.system.socket_closing`` arrives it reconnects: to the same channel if
``HEAD …/channels/{id}`` says it still exists, else to a new channel, and in both cases
it repairs the subscriptions (``GET`` diffed against the desired set, then ``PUT``).

:func:`manage_subscriptions` adds ``v2.conversations.{id}.transcription`` when a
conversation appears and removes it when the conversation is finished, batching
requests that arrive together. All subscription calls on a channel are serialized by
one lock (reference §3.3: concurrent read-modify-write loses topics).
"""

from __future__ import annotations

import json
import logging
import random
from typing import Final

import attrs
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket_url

from indexer.completion import SubscriptionChange
from indexer.config import StreamSettings
from indexer.deadletter import DeadLetterStore
from indexer.errors import GenesysError, StreamClosed
from indexer.frames import accept_frame
from indexer.genesys import GenesysClient
from indexer.models import Channel, Envelope
from indexer.recovery import Gap
from indexer.stats import Statistics
from indexer.topics import SOCKET_CLOSING, transcription_topic

__all__ = ["ChannelState", "manage_subscriptions", "open_channel", "read_notifications"]

log = logging.getLogger(__name__)

#: Topics one channel may hold (reference §3.8); more needs a pool of channels.
TOPIC_LIMIT: Final = 1000
RECONNECT_BACKOFF_MAX_S: Final = 30.0
#: A socket that stayed open this long (s) resets the reconnect backoff.
HEALTHY_SOCKET_S: Final = 60.0
#: Gaps are widened by this much on each side (the service clock is known to the second).
GAP_PADDING_MS: Final = 5000
CONNECT_TIMEOUT_S: Final = 30.0
PING: Final = json.dumps({"message": "ping"})


@attrs.define
class ChannelState:
    """The channel in use and the topics it must hold; shared by the reader and the manager.

    :ivar fixed_topics: topics held for the whole run (queue conversation topics).
    :ivar conversations: conversations whose transcription topic is wanted.
    """

    channel: Channel
    fixed_topics: tuple[str, ...]
    conversations: set[str] = attrs.field(factory=set)
    lock: trio.Lock = attrs.field(factory=trio.Lock)

    def desired(self) -> list[str]:
        """Every topic the channel should hold."""
        return [*self.fixed_topics, *(transcription_topic(c) for c in sorted(self.conversations))]


async def open_channel(client: GenesysClient, fixed_topics: tuple[str, ...]) -> ChannelState:
    """Create a channel and subscribe it to ``fixed_topics`` (reference §3.1 steps 2-3)."""
    channel = await client.create_channel()
    await client.replace_subscriptions(channel.id, fixed_topics)
    log.info("notification channel %s created with %d topics", channel.id, len(fixed_topics))
    return ChannelState(channel=channel, fixed_topics=fixed_topics)


async def _repair(client: GenesysClient, state: ChannelState) -> None:
    """Make the channel hold exactly the desired topics; renew the channel if it is gone."""
    async with state.lock:
        if not await client.channel_exists(state.channel.id):
            state.channel = await client.create_channel()
            log.info("notification channel replaced by %s", state.channel.id)
        desired = state.desired()
        current = {t.id for t in await client.get_subscriptions(state.channel.id)}
        if current != set(desired):
            await client.replace_subscriptions(state.channel.id, desired)
            log.info("subscriptions repaired: %d topics", len(desired))


async def _pump(
    ws: WebSocketConnection,
    envelopes: trio.MemorySendChannel[Envelope | Gap],
    settings: StreamSettings,
    stats: Statistics,
    dead_letters: DeadLetterStore,
    capture: trio.abc.AsyncResource | None,
) -> None:
    """Read frames until the socket closes, goes silent or announces ``socket_closing``.

    :raises StreamClosed: in each of those cases, after the ping task has stopped.
    """

    async def ping() -> None:
        while True:
            await trio.sleep(settings.ping_interval_s)
            try:
                await ws.send_message(PING)
            except ConnectionClosed:
                return

    async def receive() -> str:
        while True:
            with trio.move_on_after(settings.heartbeat_timeout_s) as silence:
                try:
                    frame = await ws.get_message()
                except ConnectionClosed:
                    return "the socket closed"
            if silence.cancelled_caught:
                return f"no message for {settings.heartbeat_timeout_s} s"
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            if capture is not None:
                await capture.write(text + "\n")  # type: ignore[attr-defined]
            envelope = await accept_frame(text, envelopes, stats=stats, dead_letters=dead_letters)
            if envelope is not None and envelope.topic_name == SOCKET_CLOSING:
                return "the service announced socket_closing"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ping)
        reason = await receive()
        nursery.cancel_scope.cancel()
    raise StreamClosed(reason)


async def read_notifications(
    client: GenesysClient,
    state: ChannelState,
    envelopes: trio.MemorySendChannel[Envelope | Gap],
    *,
    settings: StreamSettings,
    stats: Statistics,
    dead_letters: DeadLetterStore,
    lookback_s: float | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Read the channel's WebSocket forever, reconnecting as described in the module docstring.

    After the first socket opens, and after every reconnect, a :class:`~indexer.recovery.Gap`
    goes downstream: from ``lookback_s`` before the start (``None``: no look-back), then
    from each drop. Reports started once the first socket is open. Cancellation: returns by cancellation
    only; closes ``envelopes`` on the way out, which tells the detector the stream ended.
    """
    capture = await trio.open_file(settings.capture_path, "a") if settings.capture_path else None
    started = False
    failures = 0
    connected_at: float | None = None  # when the current socket opened
    gap_since_ms = client.server_now_ms() - int(lookback_s * 1000) if lookback_s is not None else None
    async with envelopes:
        try:
            while True:
                try:
                    async with open_websocket_url(
                        state.channel.connect_uri, connect_timeout=CONNECT_TIMEOUT_S, disconnect_timeout=5
                    ) as ws:
                        if not started:
                            task_status.started()
                            started = True
                        connected_at = trio.current_time()
                        stats.channel_id = state.channel.id
                        log.info("notification socket open on channel %s", state.channel.id)
                        if gap_since_ms is not None:
                            end_ms = client.server_now_ms() + GAP_PADDING_MS
                            await envelopes.send(Gap(start_ms=gap_since_ms - GAP_PADDING_MS, end_ms=end_ms))
                            gap_since_ms = None
                        await _pump(ws, envelopes, settings, stats, dead_letters, capture)
                except (StreamClosed, ConnectionClosed, HandshakeError, OSError) as exc:
                    # Back off harder while sockets keep failing; a socket that stayed up resets it.
                    healthy = (
                        connected_at is not None and trio.current_time() - connected_at >= HEALTHY_SOCKET_S
                    )
                    failures = 1 if healthy else failures + 1
                    connected_at = None
                    if gap_since_ms is None and lookback_s is not None:
                        gap_since_ms = client.server_now_ms()
                    stats.reconnects += 1
                    log.warning("notification socket closed (%s); reconnecting", type(exc).__name__)
                    delay = min(RECONNECT_BACKOFF_MAX_S, 0.5 * 2 ** min(failures - 1, 6))
                    await trio.sleep(random.uniform(0, delay) if failures > 1 else 0)
                    if started:
                        await _repair(client, state)  # before reconnecting: the channel may be gone
        finally:
            if capture is not None:
                with trio.move_on_after(5, shield=True):
                    await capture.aclose()


async def manage_subscriptions(
    client: GenesysClient,
    state: ChannelState,
    changes: trio.MemoryReceiveChannel[SubscriptionChange],
    *,
    stats: Statistics,
) -> None:
    """Apply subscription changes until ``changes`` closes; see the module docstring."""
    async with changes:
        async for first in changes:
            batch = [first]
            while True:
                try:
                    batch.append(changes.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            added: list[str] = []
            removed = False
            for change in batch:
                if change.action == "add" and change.conversation_id not in state.conversations:
                    state.conversations.add(change.conversation_id)
                    added.append(change.conversation_id)
                elif change.action == "remove" and change.conversation_id in state.conversations:
                    state.conversations.discard(change.conversation_id)
                    removed = True
            added = [c for c in added if c in state.conversations]
            if len(state.fixed_topics) + len(state.conversations) > TOPIC_LIMIT:
                log.warning("more than %d topics wanted on one channel", TOPIC_LIMIT)
            async with state.lock:
                try:
                    if removed:
                        await client.replace_subscriptions(state.channel.id, state.desired())
                    elif added:
                        await client.add_subscriptions(
                            state.channel.id, [transcription_topic(c) for c in added]
                        )
                except GenesysError as exc:
                    if exc.status != 404:
                        raise
                    log.warning("channel %s is gone; the reader will renew it", state.channel.id)
            stats.subscriptions = len(state.fixed_topics) + len(state.conversations)
