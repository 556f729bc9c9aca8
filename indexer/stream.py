"""The notification stream: a pool of channels, their WebSockets and subscriptions (reference §3).

:func:`follow_channels` is the producer of the flow. One channel holds at most 1,000
topics (reference §3.8), so the queue conversation topics and one
``v2.conversations.{id}.transcription`` per followed conversation are spread over a
:class:`ChannelPool` of up to ``stream.max_channels`` channels. On each channel it keeps
one WebSocket open (no auth on the socket, §3.4):

- it sends ``{"message":"ping"}`` every ``ping_interval_s`` and treats
  ``heartbeat_timeout_s`` without any frame as a dead socket (§3.6);
- **make-before-break handover**: on ``v2.system.socket_closing`` (§3.7), before the
  token that created the channel is renewed (channels are bound to their token, §3.9)
  and ``channel_max_age_s`` after creation or shortly before the channel's ``expires``
  (24 h, §3.8), it creates a new channel, connects to it, subscribes it to the same
  topics, and only then closes the old socket, once it has answered a ping (a half-open
  socket looks open but gets nothing: its watchdog trips instead, and the time since its
  last frame is a gap). The old socket is read until then, so nothing published
  meanwhile is missed; the tracker drops the overlap's duplicates;
- **reconnect** after a lost socket: jittered exponential backoff, ``HEAD`` the channel
  and create a new one if it is gone, connect, then repair the subscriptions (``GET``
  diffed against the desired set, then ``PUT``) (§3.10).

Every period without a live socket on a channel goes downstream as a
:class:`~indexer.recovery.Gap` for recovery to fill from the REST API, from the lost
socket's last frame: once, still open, as soon as the loss is noticed, and again, whole,
when a socket is live again. So does the look-back before the first sockets opened.

Conversations are followed when they appear and dropped when finished, in batches; a
dropped topic leaves the service's list with the channel's next ``PUT``, at most
``REMOVAL_INTERVAL_S`` later, or at once when a conversation waits for its room. A
conversation's topic goes to the first channel with room; a new channel is opened when all
are full. **Control before data**: the queue conversation topics have channels of their
own, which take transcription topics only when the pool cannot grow; their sockets are
read beside the transcripts' ones, so under load conversation events are not stuck behind
transcription messages on one socket (the detector then takes them first,
:mod:`indexer.completion`). When ``max_channels`` channels are full, a conversation waits
for room (logged and counted as ``waiting_for_room``): its live transcript then misses its start, so it is
completed from the post-call transcript (:mod:`indexer.recovery`). All subscription calls
on one channel are serialized by the channel's lock (§3.3: concurrent read-modify-write
loses topics).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable
from typing import Any, Final

import attrs
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, connect_websocket_url

from indexer.completion import SubscriptionChange
from indexer.config import FRAME_READ_FACTOR, MIN_FRAME_BYTES, StreamSettings
from indexer.deadletter import DeadLetterStore
from indexer.errors import AuthenticationError, ConfigError
from indexer.frames import accept_frame
from indexer.genesys import API_ERRORS, GenesysClient
from indexer.models import Channel, ChannelTopic, Envelope, SystemMessage
from indexer.recovery import Gap
from indexer.stats import Statistics
from indexer.topics import SOCKET_CLOSING, topic_kind, transcription_topic

__all__ = ["TOPIC_LIMIT", "ChannelPool", "PooledChannel", "follow_channels", "open_pool"]

#: ``systemTopicType`` values of system messages after which a channel gets nothing more.
_LOST_SUBSCRIPTIONS: Final = frozenset({"no_longer_subscribed", "subscription_changed", "token_revoked"})
log = logging.getLogger(__name__)

#: Topics one channel may hold (reference §3.8).
TOPIC_LIMIT: Final = 1000
#: How long finished conversations' topics stay subscribed before one ``PUT`` drops them
#: all, in s, unless their room is wanted sooner. Each ``PUT`` sends the channel's whole
#: list (up to 1,000 topics), and a conversation is dropped at the end of its re-open
#: window: one ``PUT`` per finished conversation was the worker's steady cost.
REMOVAL_INTERVAL_S: Final = 5.0
RECONNECT_BACKOFF_MAX_S: Final = 30.0
#: A socket that stayed open this long (s) resets the reconnect backoff.
HEALTHY_SOCKET_S: Final = 60.0
#: Hand over this long (s) before the channel's ``expires``.
EXPIRY_MARGIN_S: Final = 600.0
#: A channel is kept at least this long (s), whatever its token or expiry say.
MIN_CHANNEL_LIFE_S: Final = 1.0
#: A handover that failed is tried again this much later (s); the old socket stays meanwhile.
HANDOVER_RETRY_S: Final = 5.0
#: Gaps are widened by this much on each side (the service clock is known to the second).
GAP_PADDING_MS: Final = 5000
CONNECT_TIMEOUT_S: Final = 30.0
CLOSE_TIMEOUT_S: Final = 5.0
PING: Final = json.dumps({"message": "ping"})
_SOCKET_ERRORS: Final = (HandshakeError, ConnectionClosed, OSError, trio.TooSlowError)


@attrs.define(eq=False)
class PooledChannel:
    """One channel of the pool and the topics it must hold.

    :ivar topics: the desired topics, in subscription order (an ordered set).
    :ivar handover_at: trio time at which the channel is replaced by a new one.
    :ivar control: it holds the queue conversation topics, and a transcription topic only
        when the pool cannot grow (see the module: control before data).
    :ivar stale: topics dropped from ``topics`` that the service still holds, until the
        next ``PUT`` of the list (removals are batched: :data:`REMOVAL_INTERVAL_S`).
    :ivar stale_since: trio time of the oldest of them.
    """

    channel: Channel
    topics: dict[str, None]
    handover_at: float
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    control: bool = False
    stale: int = 0
    stale_since: float = 0.0

    def room(self) -> int:
        """Topics the channel can still take (the service's limit counts stale ones)."""
        return TOPIC_LIMIT - len(self.topics) - self.stale


@attrs.define
class ChannelPool:
    """The channels in use and where each followed conversation's topic is.

    :ivar placed: conversation id → the channel holding its transcription topic.
    :ivar waiting: conversations to follow once a channel has room, oldest first.
    """

    channels: list[PooledChannel]
    max_channels: int
    placed: dict[str, PooledChannel] = attrs.field(factory=dict)
    waiting: dict[str, None] = attrs.field(factory=dict)

    def with_room(self, *, control: bool) -> PooledChannel | None:
        """The first channel that can take a topic: a transcripts' one, or (``control``)
        any, the queues' too."""
        return next((c for c in self.channels if c.room() > 0 and (control or not c.control)), None)

    def topic_count(self) -> int:
        """Topics held over all channels."""
        return sum(len(c.topics) for c in self.channels)


def _handover_at(client: GenesysClient, channel: Channel, settings: StreamSettings) -> float:
    """When a channel created just now must be replaced (trio time); see the module docstring."""
    now = trio.current_time()
    due = min(now + settings.channel_max_age_s, client.token_renew_at)
    if channel.expires is not None:
        left_s = (channel.expires.timestamp() * 1000 - client.server_now_ms()) / 1000
        due = min(due, now + left_s - EXPIRY_MARGIN_S)
    return max(due, now + MIN_CHANNEL_LIFE_S)


async def _create(client: GenesysClient, topics: dict[str, None], settings: StreamSettings) -> PooledChannel:
    channel = await client.create_channel()
    return PooledChannel(channel=channel, topics=topics, handover_at=_handover_at(client, channel, settings))


async def open_pool(
    client: GenesysClient, fixed_topics: Iterable[str], settings: StreamSettings
) -> ChannelPool:
    """Create the channels that hold ``fixed_topics`` (at least one) and, when the pool may
    grow, one for the transcription topics; nothing is connected yet.

    :raises ConfigError: the fixed topics need more than ``stream.max_channels`` channels.
    """
    fixed = list(dict.fromkeys(fixed_topics))
    chunks = [fixed[i : i + TOPIC_LIMIT] for i in range(0, len(fixed), TOPIC_LIMIT)] or [[]]
    if len(chunks) > settings.max_channels:
        raise ConfigError(
            f"GENESYS_QUEUES: {len(fixed)} queue topics need {len(chunks)} channels, "
            f"more than stream.max_channels ({settings.max_channels})"
        )
    channels = [await _create(client, dict.fromkeys(chunk), settings) for chunk in chunks]
    if fixed and len(channels) < settings.max_channels:  # control before data (see the module)
        for entry in channels:
            entry.control = True
        # the first transcripts' channel is open with the others, not created when the
        # first call comes (its socket would connect after the call's first words)
        channels.append(await _create(client, {}, settings))
    log.info("%d notification channels for %d queue topics", len(channels), len(fixed))
    return ChannelPool(channels=channels, max_channels=settings.max_channels)


def _check_queue_topics(listing: Iterable[ChannelTopic]) -> None:
    """A queue topic the service refuses (``state: Rejected``) leaves the worker blind.

    :raises ConfigError: naming the topic and the permissions Genesys says are missing.
    """
    for topic in listing:
        if topic.state == "Rejected" and topic_kind(topic.id) == "conversation":
            missing = ", ".join(topic.missing_permissions) or "not given"
            raise ConfigError(
                f"GENESYS_QUEUES: Genesys Cloud refused the topic {topic.id} "
                f"({topic.rejection_reason or 'rejected'}; missing permissions: {missing}): "
                "grant them to the OAuth client's role"
            )


@attrs.define(eq=False)
class _Socket:
    """One open WebSocket and what its reader saw.

    :ivar last_frame_ms: service time of the latest frame read (of the opening at first).
    :ivar read: set by the next frame read (then replaced), or when the socket is lost.
    :ivar wake: set when the socket is lost or announced ``socket_closing``.
    :ivar lost_at_ms: when the socket was lost (``None`` while open): its ``last_frame_ms``,
        because a socket that died silently lost everything after its last frame.
    :ivar retired: closed by us after a handover (not a loss).
    :ivar unsubscribed_at_ms: when a system message said the channel lost its subscriptions
        or its token (``v2.system.no_longer_subscribed``, ``…token_revoked``,
        ``subscription_changed``): events since then are gone, a gap to recover.
    :ivar token_revoked: the channel's token was revoked: renew it before the handover.
    """

    ws: WebSocketConnection
    opened_at: float
    last_frame_ms: int
    read: trio.Event = attrs.field(factory=trio.Event)
    wake: trio.Event = attrs.field(factory=trio.Event)
    lost_at_ms: int | None = None
    retired: bool = False
    unsubscribed_at_ms: int | None = None
    token_revoked: bool = False

    async def retire(self) -> None:
        """Close the socket on purpose: its reader stops without reporting a loss."""
        self.retired = True
        with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            await self.ws.aclose()


def _size(frame: str | bytes) -> int:
    """The bytes of ``frame`` on the wire (UTF-8): counted only when its length may exceed
    a limit, as a character takes 1 to 4 bytes."""
    if isinstance(frame, bytes):
        return len(frame)
    return len(frame) if len(frame) < MIN_FRAME_BYTES // 4 else len(frame.encode())


@attrs.define
class _Follower:
    """Reads every channel of the pool and keeps its subscriptions right."""

    client: GenesysClient
    pool: ChannelPool
    envelopes: trio.MemorySendChannel[Envelope | Gap]
    settings: StreamSettings
    stats: Statistics
    dead_letters: DeadLetterStore
    capture: trio.abc.AsyncResource | None
    #: One capture write at a time: the sockets' readers write from threads, and two
    #: lines written at once could interleave.
    capture_lock: trio.Lock = attrs.field(factory=trio.Lock)

    def _count(self) -> None:
        self.stats.channels = len(self.pool.channels)
        self.stats.subscriptions = self.pool.topic_count()
        self.stats.waiting_for_room = len(self.pool.waiting)

    async def _gap(self, lost_at_ms: int, *, over: bool = True, start_up: bool = False) -> None:
        """Report the time without a live socket since ``lost_at_ms``, padded; ``over``: a
        socket is live again (else the gap is still open, see :class:`Gap`)."""
        end_ms = self.client.server_now_ms() + GAP_PADDING_MS if over else None
        await self.envelopes.send(Gap(start_ms=lost_at_ms - GAP_PADDING_MS, end_ms=end_ms, start_up=start_up))

    # --- one socket ---------------------------------------------------------------------

    async def _read(self, socket: _Socket, entry: PooledChannel) -> None:
        """Read frames until the socket closes or goes silent; ping meanwhile."""
        ws = socket.ws

        async def ping() -> None:
            while True:
                await trio.sleep(self.settings.ping_interval_s)
                try:
                    await ws.send_message(PING)
                except ConnectionClosed:
                    return

        async def receive() -> str:
            while True:
                with trio.move_on_after(self.settings.heartbeat_timeout_s) as silence:
                    try:
                        frame = await ws.get_message()
                    except ConnectionClosed:
                        return "the socket closed"
                if silence.cancelled_caught:
                    return f"no message for {self.settings.heartbeat_timeout_s} s"
                socket.last_frame_ms = self.client.server_now_ms()
                socket.read.set()
                socket.read = trio.Event()
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                if _size(frame) > self.settings.max_frame_bytes:
                    self.stats.messages["too_large"] += 1
                    log.warning(
                        "a frame of %d bytes, over stream.max_frame_bytes: dead-lettered", _size(frame)
                    )
                    await self.dead_letters.add(
                        "frame_too_large", f"{_size(frame)} bytes, over stream.max_frame_bytes", text
                    )
                    continue
                if self.capture is not None:
                    async with self.capture_lock:
                        await self.capture.write(text + "\n")  # type: ignore[attr-defined]
                envelope = await accept_frame(
                    text, self.envelopes, stats=self.stats, dead_letters=self.dead_letters
                )
                if envelope is None or socket.retired:
                    continue
                body = envelope.event_body
                if envelope.topic_name == SOCKET_CLOSING:
                    log.info("channel %s announced socket_closing: handing over", entry.channel.id)
                    entry.handover_at = trio.current_time()
                    socket.wake.set()
                elif isinstance(body, SystemMessage) and body.system_topic_type in _LOST_SUBSCRIPTIONS:
                    # SDK SystemMessageSystemMessage: the channel no longer gets its topics (another
                    # channel took them, or the token was revoked). A new channel, subscribed to
                    # the whole topic set, takes over; what was published meanwhile is a gap.
                    log.warning(
                        "channel %s: %s (%s): handing over to a new channel",
                        entry.channel.id,
                        body.system_topic_type,
                        body.reason or "no reason given",
                    )
                    socket.unsubscribed_at_ms = socket.unsubscribed_at_ms or socket.last_frame_ms
                    socket.token_revoked |= body.system_topic_type == "token_revoked"
                    entry.handover_at = trio.current_time()
                    socket.wake.set()

        self.stats.sockets_open += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ping)
                reason = await receive()
                nursery.cancel_scope.cancel()
        finally:  # not shielded: when cancelled, the socket is closed without the handshake
            self.stats.sockets_open -= 1
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await ws.aclose()
        if not socket.retired:
            socket.lost_at_ms = socket.last_frame_ms
            log.warning("notification socket on channel %s lost (%s)", entry.channel.id, reason)
            await self._gap(socket.lost_at_ms, over=False)
            socket.wake.set()
            socket.read.set()

    async def _connect(self, sockets: trio.Nursery, entry: PooledChannel, channel: Channel) -> _Socket:
        """Open a socket on ``channel``, start reading it, then make the subscriptions match.

        :raises HandshakeError, ConnectionClosed, OSError, trio.TooSlowError: no socket.
        """
        with trio.fail_after(CONNECT_TIMEOUT_S):
            ws = await connect_websocket_url(
                sockets,
                channel.connect_uri,
                max_message_size=self.settings.max_frame_bytes * FRAME_READ_FACTOR,
            )
        socket = _Socket(ws=ws, opened_at=trio.current_time(), last_frame_ms=self.client.server_now_ms())
        sockets.start_soon(self._read, socket, entry)
        try:
            current = {t.id for t in await self.client.get_subscriptions(channel.id)}
            if current == set(entry.topics):
                entry.stale = 0  # the channel holds its list, no more
            else:
                listing = await self._put_topics(entry, channel.id)
                log.info("channel %s subscribed to %d topics", channel.id, len(entry.topics))
                _check_queue_topics(listing)
        except BaseException:
            await socket.retire()
            raise
        return socket

    async def _handover(self, sockets: trio.Nursery, entry: PooledChannel, old: _Socket) -> _Socket:
        """Make before break: a new channel with the same topics is live before ``old`` closes."""
        async with entry.lock:
            try:
                if old.token_revoked:
                    await self.client.access_token(renew=True)
                fresh = await _create(self.client, entry.topics, self.settings)
                socket = await self._connect(sockets, entry, fresh.channel)
            except AuthenticationError:
                raise
            except (*API_ERRORS, *_SOCKET_ERRORS) as exc:
                log.warning("handover failed (%s); keeping the old socket", type(exc).__name__)
                entry.handover_at = trio.current_time() + HANDOVER_RETRY_S
                return old
            entry.channel, entry.handover_at = fresh.channel, fresh.handover_at
        if not await self._answers(old):  # it died silently: nothing since came through it
            old.lost_at_ms = old.last_frame_ms
        await old.retire()
        self.stats.handovers += 1
        log.info("handed over to channel %s", entry.channel.id)
        if old.lost_at_ms is not None or old.unsubscribed_at_ms is not None:
            # The old socket closed, or lost its subscriptions, before the new one was live.
            await self._gap(min(t for t in (old.lost_at_ms, old.unsubscribed_at_ms) if t is not None))
        return socket

    async def _answers(self, socket: _Socket) -> bool:
        """Whether ``socket`` still delivers: a frame is read after a ping before its watchdog
        trips (a half-open socket looks open but gets nothing, §3.6)."""
        try:
            await socket.ws.send_message(PING)
        except ConnectionClosed:
            return False
        await socket.read.wait()
        return socket.lost_at_ms is None

    async def follow(
        self, entry: PooledChannel, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep one live socket on ``entry`` for the whole run; reports started once it is open."""
        started = False
        failures = 0
        lost_at_ms: int | None = None
        socket: _Socket | None = None
        async with trio.open_nursery() as sockets:
            while True:
                if socket is None:
                    try:
                        async with entry.lock:
                            socket = await self._connect(sockets, entry, entry.channel)
                    except AuthenticationError:
                        raise
                    except (*API_ERRORS, *_SOCKET_ERRORS) as exc:
                        failures += 1
                        self.stats.reconnects += 1
                        if lost_at_ms is None:
                            lost_at_ms = self.client.server_now_ms()
                        log.warning("cannot open a socket (%s); retrying", type(exc).__name__)
                        await self._back_off(failures)
                        await self._repair_channel(entry)
                        continue
                    if not started:
                        task_status.started()
                        started = True
                    log.info("notification socket open on channel %s", entry.channel.id)
                    if lost_at_ms is not None:
                        await self._gap(lost_at_ms)
                        lost_at_ms = None
                if socket.lost_at_ms is None and trio.current_time() < entry.handover_at:
                    with trio.move_on_at(entry.handover_at):
                        await socket.wake.wait()
                    socket.wake = trio.Event()
                if socket.lost_at_ms is not None:
                    healthy = trio.current_time() - socket.opened_at >= HEALTHY_SOCKET_S
                    failures = 1 if healthy else failures + 1
                    lost_at_ms, socket = socket.lost_at_ms, None
                    self.stats.reconnects += 1
                    await self._back_off(failures)
                    await self._repair_channel(entry)
                elif trio.current_time() >= entry.handover_at:
                    socket = await self._handover(sockets, entry, socket)

    async def _back_off(self, failures: int) -> None:
        """No wait after a first failure; then jittered, doubling up to the cap."""
        delay = min(RECONNECT_BACKOFF_MAX_S, 0.5 * 2 ** min(failures - 1, 6))
        await trio.sleep(random.uniform(0, delay) if failures > 1 else 0)

    async def _repair_channel(self, entry: PooledChannel) -> None:
        """Replace the channel by a new one when ``HEAD`` says it no longer exists (§3.10)."""
        try:
            async with entry.lock:
                if not await self.client.channel_exists(entry.channel.id):
                    fresh = await _create(self.client, entry.topics, self.settings)
                    entry.channel, entry.handover_at = fresh.channel, fresh.handover_at
                    log.info("notification channel gone; replaced by %s", entry.channel.id)
        except AuthenticationError:
            raise
        except API_ERRORS as exc:  # tried again at the next attempt
            log.warning("cannot check channel %s: %s", entry.channel.id, exc)

    # --- subscriptions ------------------------------------------------------------------

    async def manage(
        self, changes: trio.MemoryReceiveChannel[SubscriptionChange], nursery: trio.Nursery
    ) -> None:
        """Apply subscription changes until ``changes`` closes; see the module docstring."""
        async with changes:
            while True:
                batch: list[SubscriptionChange] = []
                with trio.move_on_after(REMOVAL_INTERVAL_S):  # at least that often: stale topics
                    try:
                        batch.append(await changes.receive())
                    except trio.EndOfChannel:
                        return
                while True:
                    try:
                        batch.append(changes.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._apply(batch, nursery)
                self._count()

    async def _apply(self, batch: list[SubscriptionChange], nursery: trio.Nursery) -> None:
        """Removals drop a topic from its channel's list at once, from the service's at the
        channel's next ``PUT``: within :data:`REMOVAL_INTERVAL_S`, or as soon as a
        conversation waits for room (before the pool grows). Additions go in one ``POST``
        per channel; a transcripts' channel with room goes before the queues' channels."""
        pool = self.pool
        now = trio.current_time()
        for change in batch:
            conversation_id = change.conversation_id
            if change.action == "remove":
                pool.waiting.pop(conversation_id, None)
                entry = pool.placed.pop(conversation_id, None)
                if entry is not None:
                    del entry.topics[transcription_topic(conversation_id)]
                    entry.stale_since = entry.stale_since if entry.stale else now
                    entry.stale += 1
            elif conversation_id not in pool.placed:
                pool.waiting[conversation_id] = None
        replace = {c for c in pool.channels if c.stale and now - c.stale_since >= REMOVAL_INTERVAL_S}
        added: dict[PooledChannel, list[str]] = {}
        reclaimed = False
        for conversation_id in list(pool.waiting):
            entry = pool.with_room(control=False)
            if entry is None and not reclaimed:  # room is wanted now: stale topics go first
                reclaimed = True
                for stale in [c for c in pool.channels if c.stale]:
                    if await self._replace(stale):  # it carried what was placed on it so far
                        replace.discard(stale)
                        added.pop(stale, None)
                entry = pool.with_room(control=False)
            if entry is None:
                entry = await self._grow(nursery)
            if entry is None:  # the pool is full: the queues' channels take transcription topics too
                entry = pool.with_room(control=True)
            if entry is None:
                log.warning(
                    "%d conversations wait for a free topic (stream.max_channels = %d, full)",
                    len(pool.waiting),
                    pool.max_channels,
                )
                break
            del pool.waiting[conversation_id]
            topic = transcription_topic(conversation_id)
            entry.topics[topic] = None
            pool.placed[conversation_id] = entry
            added.setdefault(entry, []).append(topic)
        for entry in replace:
            if await self._replace(entry):  # it carried what was placed on it
                added.pop(entry, None)
        for entry, topics in added.items():
            async with entry.lock:
                try:
                    await self.client.add_subscriptions(entry.channel.id, topics)
                except AuthenticationError:
                    raise
                except API_ERRORS as exc:  # the next reconnect or handover repairs the list
                    log.warning("subscriptions of channel %s not updated: %s", entry.channel.id, exc)

    async def _put_topics(self, entry: PooledChannel, channel_id: str) -> list[ChannelTopic]:
        """``PUT`` ``entry``'s whole list on ``channel_id`` (the caller holds ``entry.lock``):
        the stale topics it drops stop counting against the room once the service has
        taken it; those removed while it is on its way stay stale.

        :returns: the topics the service refused (:meth:`GenesysClient.replace_subscriptions`).
        :raises: what the client raises; the stale count is then left as it was.
        """
        dropped = entry.stale
        listing = await self.client.replace_subscriptions(channel_id, list(entry.topics))
        entry.stale -= dropped
        return listing

    async def _replace(self, entry: PooledChannel) -> bool:
        """:meth:`_put_topics` on the channel, under its lock. Whether the service took the
        list; a failure is logged, and the stale topics wait for the next try."""
        async with entry.lock:
            try:
                await self._put_topics(entry, entry.channel.id)
            except AuthenticationError:
                raise
            except API_ERRORS as exc:
                log.warning("subscriptions of channel %s not updated: %s", entry.channel.id, exc)
                return False
            return True

    async def _grow(self, nursery: trio.Nursery) -> PooledChannel | None:
        """Open one more channel when the pool may grow, and start following it."""
        if len(self.pool.channels) >= self.pool.max_channels:
            return None
        try:
            entry = await _create(self.client, {}, self.settings)
        except AuthenticationError:
            raise
        except API_ERRORS as exc:
            log.warning("cannot open another channel: %s", exc)
            return None
        self.pool.channels.append(entry)
        nursery.start_soon(self.follow, entry)  # it subscribes whatever the channel holds by then
        log.info("pool grew to %d channels", len(self.pool.channels))
        return entry


async def _open_capture(path: str) -> trio.abc.AsyncResource:
    """The capture file, appended to, mode 0600: it holds unredacted frames."""

    def open_private() -> Any:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # also when an earlier run left it readable by others
        return os.fdopen(fd, "a", encoding="utf-8")

    file = await trio.to_thread.run_sync(open_private)
    resource: trio.abc.AsyncResource = trio.wrap_file(file)
    return resource


async def follow_channels(
    client: GenesysClient,
    pool: ChannelPool,
    envelopes: trio.MemorySendChannel[Envelope | Gap],
    changes: trio.MemoryReceiveChannel[SubscriptionChange],
    *,
    settings: StreamSettings,
    stats: Statistics,
    dead_letters: DeadLetterStore,
    lookback_s: float | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Read every channel of ``pool`` and apply ``changes``, as the module docstring says.

    Reports started once every initial channel has a live socket; then, with
    ``lookback_s``, sends a :class:`~indexer.recovery.Gap` covering that many seconds
    before the start. Runs until cancelled; closes ``envelopes`` on the way out, which
    tells the detector the stream ended.

    :raises AuthenticationError: Genesys Cloud refused the credentials.
    """
    began_ms = client.server_now_ms()
    capture = await _open_capture(settings.capture_path) if settings.capture_path else None
    follower = _Follower(client, pool, envelopes, settings, stats, dead_letters, capture)
    try:
        async with envelopes, trio.open_nursery() as nursery:
            # the transcripts' channels first: when the queues' topics start to deliver
            # conversations, a socket is live to subscribe their transcripts on
            for entry in sorted(pool.channels, key=lambda entry: entry.control):
                await nursery.start(follower.follow, entry)
            follower._count()
            if lookback_s is not None:
                await follower._gap(began_ms - int(lookback_s * 1000), start_up=True)
            task_status.started()
            await follower.manage(changes, nursery)
    finally:
        if capture is not None:
            with trio.move_on_after(5, shield=True):
                await capture.aclose()
