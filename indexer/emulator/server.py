"""The Genesys Cloud emulator: the real protocol on loopback, playing a corpus.

Served by hypercorn's trio worker on one port (login, API and streaming hosts are the
same address). What it serves, with the reference section it follows:

- ``POST /oauth/token``: client credentials with Basic auth; ``invalid_client`` (§2.3);
- ``POST|GET /api/v2/notifications/channels``, ``HEAD …/channels/{id}`` (§3.2);
- ``GET|POST|PUT|DELETE …/channels/{id}/subscriptions``; 400 over 1,000 topics (§3.3, §3.8);
- the WebSocket at the channel's ``connectUri``: heartbeats on ``channel.metadata`` every
  ``heartbeat_interval_s``, ``{"message":"ping"}`` answered with ``pong``, one socket per
  channel (a second one closes the first), events only for subscribed topics (§3.4-3.6);
- ``GET /api/v2/routing/queues[?name=]``, ``GET /api/v2/routing/queues/{id}``;
- ``GET /api/v2/conversations/{id}`` (§6.3), ``GET /api/v2/analytics/conversations/{id}/details``
  and ``POST /api/v2/analytics/conversations/details/query`` (§6.4);
- ``GET /api/v2/speechandtextanalytics/conversations/{id}/communications/{id}/transcripturl``
  returning a pre-signed URL to the transcript JSON, served without the bearer token (§6.1);
- ``GET /_emulator/status``: conversations total / started / ended.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from indexer.emulator.corpus import CorpusConversation
from indexer.emulator.eventbridge import SqsPublisher, SqsTarget
from indexer.emulator.scenario import Scenario, build_scenario, queue_id_for
from indexer.serialization import format_time, parse_time
from indexer.topics import CHANNEL_METADATA, conversation_id_of_transcription_topic

__all__ = ["Emulator", "EmulatorSettings"]

log = logging.getLogger(__name__)

TOPIC_LIMIT: Final = 1000
DAY_MS: Final = 86_400_000
BULK_MESSAGES: Final = 1000
CHANNEL_LIMIT: Final = 20
#: What the ``malformed`` fault sends: a conversation event without its required ``id``.
MALFORMED: Final = '{"topicName": "v2.routing.queues.q.conversations", "eventBody": {"participants": []}}'
#: How often (s) expired channels are closed.
SWEEP_INTERVAL_S: Final = 0.1
SOCKET_BUFFER: Final = 100_000


@attrs.frozen
class EmulatorSettings:
    """How the emulator plays its corpus.

    :ivar speed: simulated seconds per real second.
    :ivar heartbeat_interval_s: real seconds between ``channel.metadata`` heartbeats.
    :ivar start_interval_s: simulated seconds between the starts of two conversations.
    :ivar start_delay_s: real seconds before the first conversation starts.
    :ivar token_ttl_s: ``expires_in`` of issued tokens, in (real) seconds. A channel
        closes when the token that created it expires (reference §3.9).
    :ivar channel_ttl_s: real seconds a channel lives (24 h, reference §3.8).
    :ivar duplicate_rate: share of transcription messages sent twice (fault).
    :ivar reorder_rate: share of transcription messages held back behind the next one (fault).
    :ivar late_utterance_rate: share of conversations whose last utterance comes after
        ``SESSION_ENDED`` (fault).
    :ivar transcript_delay_s: simulated seconds after hang-up before a call's post-call
        transcript exists (``transcripturl`` answers 404 until then); third parties report
        minutes to hours (reference §10 item 3).
    :ivar public_url: the base URL clients reach the emulator at, when it is not the
        bound address (``http://emulator:8080`` in a container network); it is the base
        of every ``connectUri`` and download URL handed out.
    :ivar wait_for_subscriber: the first conversation starts ``start_delay_s`` after a
        client first subscribes to a queue's conversations topic, not after start-up (so a
        worker started later sees every call live).
    :ivar sqs: also send every event, as Genesys' EventBridge integration does, to this
        SQS queue (:mod:`indexer.emulator.eventbridge`).
    """

    speed: float = 1.0
    heartbeat_interval_s: float = 30.0
    start_interval_s: float = 10.0
    start_delay_s: float = 1.0
    seed: int = 1
    token_ttl_s: int = 86399
    channel_ttl_s: float = 24 * 3600.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    late_utterance_rate: float = 0.0
    transcript_delay_s: float = 0.0
    client_id: str = "emulator-client"
    client_secret: str = attrs.field(default="emulator-secret", repr=False)
    public_url: str | None = None
    wait_for_subscriber: bool = False
    sqs: SqsTarget | None = None


@attrs.define
class Faults:
    """Faults switched on at run time with ``POST /_emulator/faults`` (JSON, same names).

    :ivar heartbeats: ``False`` stops heartbeats and pongs (the socket goes silent when idle).
    :ivar rate_limit_count: answer this many next Platform API calls with 429.
    :ivar retry_after_s: the ``Retry-After`` of those answers, in s.
    """

    heartbeats: bool = True
    rate_limit_count: int = 0
    retry_after_s: int = 1
    #: Topics starting with one of these are answered ``Rejected`` (missing permission).
    reject_topics: list[str] = attrs.field(factory=list)
    #: When set, ``transcripturl`` answers with this status (e.g. 403, 500) instead.
    transcript_status: int | None = None


@attrs.define
class _Connection:
    """One socket; ``half_open``: it stays open, but nothing reaches it any more."""

    send: trio.MemorySendChannel[str]
    receive: trio.MemoryReceiveChannel[str]
    cancel: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    half_open: bool = False

    def deliver(self, frame: str) -> None:
        """Queue ``frame`` for the socket (lost when half-open); a full queue closes it."""
        if self.half_open:
            return
        try:
            self.send.send_nowait(frame)
        except trio.WouldBlock:
            self.cancel.cancel()  # a consumer this slow is cut off


@attrs.define
class _Channel:
    id: str
    token: str
    topics: dict[str, None] = attrs.field(factory=dict)  # in subscription order; O(1) to test
    connection: _Connection | None = None
    created_ms: int = 0
    closes_at: float = float("inf")


def _error(status: int, code: str, message: str) -> JSONResponse:
    """A Platform API ``ErrorBody`` (reference §2.4)."""
    return JSONResponse({"message": message, "code": code, "status": status}, status_code=status)


class Emulator:
    """One emulated organization playing ``conversations``; run it with :meth:`run`."""

    def __init__(self, conversations: Sequence[CorpusConversation], settings: EmulatorSettings) -> None:
        self.settings = settings
        self.conversations = list(conversations)
        self.rng = random.Random(settings.seed)
        self.organization_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.queues = {
            queue_id_for(name): name
            for c in self.conversations
            for name in (c.queue, c.transfer_to)
            if name is not None
        }
        self.tokens: dict[str, float] = {}  # valid for REST calls until (trio time)
        self.token_lifetimes: dict[str, float] = {}  # what expires_in promised; channels close then
        self.channels: dict[str, _Channel] = {}
        self.scenarios: dict[str, Scenario] = {}
        self.epoch_ms = 0
        self.t0 = 0.0
        self.base_url = ""
        self.signing_key = secrets.token_bytes(16)
        self.published = 0
        self.pings = 0
        self.malformed_sent = 0
        self.evicted_connected = 0  # channels evicted by a 21st while a socket was on them
        #: conversation id → its transcription messages published while no connected channel
        #: was subscribed to them (a client that subscribed late missed these)
        self.unheard: Counter[str] = Counter()
        self.faults = Faults()
        self._held: tuple[str, str] | None = None
        self._nursery: trio.Nursery | None = None
        self._subscribed = trio.Event()  # a queue's conversations topic was subscribed to
        self._sqs = (
            SqsPublisher(settings.sqs, organization_id=self.organization_id, rng=random.Random(settings.seed))
            if settings.sqs is not None
            else None
        )

    # --- clock and status ---------------------------------------------------------------

    def now_ms(self) -> int:
        """The simulated clock, epoch ms."""
        return self.epoch_ms + int((trio.current_time() - self.t0) * self.settings.speed * 1000)

    def real_time_of(self, sim_ms: int) -> float:
        """The trio time at which the simulated clock reads ``sim_ms``."""
        return self.t0 + (sim_ms - self.epoch_ms) / 1000 / self.settings.speed

    def status(self) -> dict[str, int]:
        """Conversations total, started and ended (hung up) so far; frames published; channels open."""
        now = self.now_ms()
        scenarios = self.scenarios.values()
        return {
            "total": len(self.conversations),
            "started": sum(s.start_ms <= now for s in scenarios),
            "ended": sum(s.hangup_ms <= now for s in scenarios),
            "published": self.published,
            "channels": len(self.channels),
            "sqs_sent": self._sqs.sent if self._sqs is not None else 0,
        }

    # --- auth ---------------------------------------------------------------------------

    def _token_of(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or self.tokens.get(token, 0) < trio.current_time():
            return None
        return token

    async def oauth_token(self, request: Request) -> Response:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode("latin-1").partition(":")
        except ValueError:
            client_id = secret = ""
        form = parse_qs((await request.body()).decode("latin-1"))
        if form.get("grant_type") != ["client_credentials"]:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if scheme.lower() != "basic" or not (
            hmac.compare_digest(client_id, self.settings.client_id)
            and hmac.compare_digest(secret, self.settings.client_secret)
        ):
            return JSONResponse(
                {"error": "invalid_client", "description": "authentication failed"}, status_code=401
            )
        token = secrets.token_urlsafe(32)
        self.tokens[token] = self.token_lifetimes[token] = trio.current_time() + self.settings.token_ttl_s
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": self.settings.token_ttl_s}
        )

    def _authorized(self, request: Request) -> tuple[str | None, Response | None]:
        token = self._token_of(request)
        if token is None:
            return None, _error(401, "bad.credentials", "Invalid login credentials.")
        if self.faults.rate_limit_count > 0:
            self.faults.rate_limit_count -= 1
            response = _error(429, "too.many.requests", "Rate limit exceeded")
            response.headers["Retry-After"] = str(self.faults.retry_after_s)
            return None, response
        return token, None

    # --- notifications ------------------------------------------------------------------

    async def create_channel(self, request: Request) -> Response:
        token, denied = self._authorized(request)
        if denied:
            return denied
        assert token is not None
        channel_id = f"streaming-0-{secrets.token_hex(13)}"
        if len(self.channels) >= CHANNEL_LIMIT:  # the 21st replaces the oldest, unconnected first (§3.8)
            victim = min(self.channels.values(), key=lambda c: (c.connection is not None, c.created_ms))
            self.evicted_connected += victim.connection is not None
            self.expire_channel(victim.id)
        now = trio.current_time()
        self.channels[channel_id] = _Channel(
            id=channel_id,
            token=token,
            created_ms=self.now_ms(),
            closes_at=min(now + self.settings.channel_ttl_s, self.token_lifetimes[token]),
        )
        ws_base = self.base_url.replace("http://", "ws://", 1)
        lifetime_ms = int(self.settings.channel_ttl_s * self.settings.speed * 1000)
        return JSONResponse(
            {
                "connectUri": f"{ws_base}/channels/{channel_id}",
                "id": channel_id,
                "expires": _iso(self.now_ms() + lifetime_ms),
            }
        )

    async def list_channels(self, request: Request) -> Response:
        token, denied = self._authorized(request)
        if denied:
            return denied
        entities = [
            {"connectUri": f"{self.base_url}/channels/{c.id}", "id": c.id}
            for c in self.channels.values()
            if c.token == token
        ]
        return JSONResponse({"entities": entities})

    async def channel(self, request: Request) -> Response:
        _, denied = self._authorized(request)
        if denied:
            return denied
        exists = request.path_params["channel_id"] in self.channels
        return Response(status_code=200 if exists else 404)

    def _rejected(self, topic: str) -> bool:
        return any(topic.startswith(prefix) for prefix in self.faults.reject_topics)

    async def subscriptions(self, request: Request) -> Response:
        """Subscriptions (§3.3); topics the client may not have are ``Rejected`` with
        ``ignoreErrors=true`` and fail the whole request (403) without it (§10 item 6)."""
        _, denied = self._authorized(request)
        if denied:
            return denied
        channel = self.channels.get(request.path_params["channel_id"])
        if channel is None:
            return _error(404, "not.found", "Channel not found")
        rejected: list[str] = []
        if request.method in ("POST", "PUT"):
            try:
                body = await request.json()
                topics = [item["id"] for item in body]
            except (ValueError, TypeError, KeyError):
                return _error(400, "bad.request", "Expected a list of {id} objects")
            rejected = [t for t in topics if self._rejected(t)]
            if rejected and request.query_params.get("ignoreErrors", "false").lower() != "true":
                return _error(403, "missing.permissions", "Missing permissions for a topic")
            topics = [t for t in topics if t not in rejected]
            wanted = {**(channel.topics if request.method == "POST" else {}), **dict.fromkeys(topics)}
            if len(wanted) > TOPIC_LIMIT:
                return _error(
                    400, "notification.subscription.limit", f"Limit of {TOPIC_LIMIT} topics exceeded"
                )
            channel.topics = wanted
            if any(t.startswith("v2.routing.queues.") for t in topics):
                self._subscribed.set()
        elif request.method == "DELETE":
            channel.topics = {}
        entities = [{"id": t, "state": "Permitted"} for t in channel.topics] + [
            {
                "id": t,
                "state": "Rejected",
                "rejectionReason": "Missing permissions",
                # What the emulator reports missing; the real names come from the service.
                "missingPermissions": [
                    "conversation:transcription:view"
                    if t.endswith(".transcription")
                    else "routing:queue:view"
                ],
            }
            for t in rejected
        ]
        return JSONResponse({"entities": entities})

    async def websocket(self, websocket: WebSocket) -> None:
        channel = self.channels.get(websocket.path_params["channel_id"])
        if channel is None:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        if channel.connection is not None:
            channel.connection.cancel.cancel()  # one socket per channel: the first one goes
        send, receive = trio.open_memory_channel[str](SOCKET_BUFFER)
        connection = _Connection(send=send, receive=receive)
        channel.connection = connection
        heartbeat = json.dumps(
            {"topicName": CHANNEL_METADATA, "eventBody": {"message": "WebSocket Heartbeat"}}
        )
        pong = json.dumps({"topicName": CHANNEL_METADATA, "eventBody": {"message": "pong"}})

        async def writer() -> None:
            async for frame in receive:
                await websocket.send_text(frame)

        async def heartbeats() -> None:
            while True:
                await trio.sleep(self.settings.heartbeat_interval_s)
                if self.faults.heartbeats:
                    connection.deliver(heartbeat)

        async def reader() -> None:
            while True:
                text = await websocket.receive_text()
                try:
                    message = json.loads(text).get("message")
                except (ValueError, AttributeError):
                    continue
                if message == "ping" and self.faults.heartbeats and not connection.half_open:
                    self.pings += 1
                    connection.deliver(pong)

        try:
            with connection.cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(writer)
                    nursery.start_soon(heartbeats)
                    with contextlib.suppress(WebSocketDisconnect):
                        await reader()
                    nursery.cancel_scope.cancel()
        finally:
            if channel.connection is connection:
                channel.connection = None
            with trio.move_on_after(1, shield=True):
                try:
                    await websocket.close()
                except Exception:
                    log.debug("socket already closed")

    async def _close_expired_channels(self) -> None:
        """Channels live ``channel_ttl_s`` and no longer than their token (reference §3.8, §3.9)."""
        while True:
            await trio.sleep(SWEEP_INTERVAL_S)
            now = trio.current_time()
            for channel in [c for c in self.channels.values() if c.closes_at <= now]:
                self.expire_channel(channel.id)

    def publish(self, text: str, topic: str) -> None:
        """Send one frame to every connected channel subscribed to ``topic`` (and to the
        SQS queue, when there is one: EventBridge needs no subscription)."""
        if self._sqs is not None:
            self._sqs.offer(text)
        heard = False
        for channel in self.channels.values():
            if channel.connection is not None and topic in channel.topics:
                channel.connection.deliver(text)
                self.published += 1
                heard = True
        if not heard and (conversation_id := conversation_id_of_transcription_topic(topic)) is not None:
            self.unheard[conversation_id] += 1

    def broadcast(self, text: str) -> None:
        """Send one frame to every connected channel, subscribed or not (system messages)."""
        for channel in self.channels.values():
            if channel.connection is not None:
                channel.connection.deliver(text)

    def drop_connections(self) -> None:
        """Close every socket from the server side, without a close handshake from the client."""
        for channel in self.channels.values():
            if channel.connection is not None:
                channel.connection.cancel.cancel()

    def half_open_connections(self) -> None:
        """Every open socket stays open but gets nothing more: no frames, heartbeats or pongs.

        A connection that died without a close (a NAT or proxy dropped it): only a client's
        watchdog notices, and what Genesys published meanwhile is lost (reference §3.6).
        Sockets opened afterwards work.
        """
        for channel in self.channels.values():
            if channel.connection is not None:
                channel.connection.half_open = True

    def expire_channel(self, channel_id: str) -> None:
        """The channel is gone: HEAD answers 404 and its socket is closed."""
        channel = self.channels.pop(channel_id, None)
        if channel is not None and channel.connection is not None:
            channel.connection.cancel.cancel()

    def expire_tokens(self) -> None:
        """API calls with any issued token answer 401 until a new token is fetched; sockets stay."""
        self.tokens.clear()

    async def socket_closing(self, close_after_s: float) -> None:
        """Announce maintenance on every socket, then close them ``close_after_s`` later (§3.7)."""
        self.broadcast(
            json.dumps({"topicName": "v2.system.socket_closing", "eventBody": {"message": "maintenance"}})
        )
        await trio.sleep(close_after_s)
        self.drop_connections()

    def system_frame(self, kind: str, channel_id: str) -> dict[str, Any]:
        """The ``v2.system.*`` notification of ``kind`` for one channel (see :meth:`system_message`)."""
        reasons = {
            "no_longer_subscribed": "another_channel_subscribed",
            "token_revoked": "user_tokens_revoked",
        }
        topic = (
            f"v2.system.{self.organization_id}.{channel_id}"
            if kind == "subscription_changed"
            else f"v2.system.{kind}.{channel_id}"
        )
        body: dict[str, Any] = {
            "channelId": channel_id,
            "systemTopicType": kind,
            "organizationId": self.organization_id,
            "message": f"The channel's subscriptions were removed ({kind})",
        }
        if kind in reasons:
            body["reason"] = reasons[kind]
        return {"topicName": topic, "version": "2", "eventBody": body}

    def system_message(self, kind: str) -> None:
        """Tell every connected channel it lost its topics (SDK ``SystemMessageSystemMessage``).

        ``no_longer_subscribed`` (another channel took the topics) and
        ``subscription_changed`` clear the channel's subscriptions; ``token_revoked``
        also revokes every token (API calls answer 401 until a new one is fetched).
        Topics: ``v2.system.no_longer_subscribed.{id}``, ``v2.system.token_revoked.{id}``,
        ``v2.system.{id}.{id}`` (reference §10 item 5).
        """
        for channel in self.channels.values():
            if channel.connection is None:
                continue
            channel.connection.deliver(json.dumps(self.system_frame(kind, channel.id)))
            channel.topics = {}
        if kind == "token_revoked":
            self.expire_tokens()

    async def faults_route(self, request: Request) -> Response:
        """``POST /_emulator/faults``: switch faults (see :class:`Faults`) or fire one-shot ones.

        One-shot keys: ``system_message`` (``no_longer_subscribed``, ``token_revoked`` or
        ``subscription_changed``, see :meth:`system_message`), ``drop`` (close every socket
        without a close frame), ``half_open``
        (every open socket gets nothing more, see :meth:`half_open_connections`),
        ``expire_channels`` (HEAD → 404, sockets closed), ``expire_tokens`` (401 until a new
        token), ``socket_closing_after_s`` (announce ``v2.system.socket_closing``, close the
        sockets that many seconds later), ``malformed`` (send that many unparseable frames).
        """
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "bad.request", "expected a JSON object")
        if "heartbeats" in body:
            self.faults.heartbeats = bool(body["heartbeats"])
        if "rate_limit_count" in body:
            self.faults.rate_limit_count = int(body["rate_limit_count"])
            self.faults.retry_after_s = int(body.get("retry_after_s", 1))
        if body.get("drop"):
            self.drop_connections()
        if body.get("half_open"):
            self.half_open_connections()
        if body.get("expire_channels"):
            for channel_id in list(self.channels):
                self.expire_channel(channel_id)
        if body.get("expire_tokens"):
            self.expire_tokens()
        if "transcript_status" in body:
            status = body["transcript_status"]
            self.faults.transcript_status = int(status) if status is not None else None
        if "reject_topics" in body:
            self.faults.reject_topics = [str(t) for t in body["reject_topics"]]
        if body.get("system_message") in ("no_longer_subscribed", "token_revoked", "subscription_changed"):
            self.system_message(str(body["system_message"]))
        for _ in range(int(body.get("malformed", 0))):
            self.broadcast(MALFORMED)
            self.malformed_sent += 1
        if "socket_closing_after_s" in body and self._nursery is not None:
            self._nursery.start_soon(self.socket_closing, float(body["socket_closing_after_s"]))
        return JSONResponse(attrs.asdict(self.faults))

    # --- routing, conversations, analytics, transcripts --------------------------------

    async def queues_list(self, request: Request) -> Response:
        _, denied = self._authorized(request)
        if denied:
            return denied
        name = request.query_params.get("name")
        page_size = int(request.query_params.get("pageSize", 25))
        page_number = int(request.query_params.get("pageNumber", 1))
        matching = [
            {"id": qid, "name": qname}
            for qid, qname in sorted(self.queues.items(), key=lambda item: item[1])
            if name is None or name.lower() in qname.lower()
        ]
        page = matching[(page_number - 1) * page_size : page_number * page_size]
        page_count = max(1, -(-len(matching) // page_size))
        return JSONResponse(
            {
                "entities": page,
                "pageSize": page_size,
                "pageNumber": page_number,
                "total": len(matching),
                "pageCount": page_count,
            }
        )

    async def queue(self, request: Request) -> Response:
        _, denied = self._authorized(request)
        if denied:
            return denied
        qid = request.path_params["queue_id"]
        if qid not in self.queues:
            return _error(404, "not.found", "Queue not found")
        return JSONResponse({"id": qid, "name": self.queues[qid]})

    def _scenario(self, request: Request) -> Scenario | None:
        scenario = self.scenarios.get(request.path_params["conversation_id"])
        return scenario if scenario is not None and scenario.start_ms <= self.now_ms() else None

    def _conversation_of(self, request: Request, *media: str) -> Scenario | Response:
        """The authorized request's conversation (of one of ``media``, if given), or the
        answer to give instead: 401/429 (see :meth:`_authorized`) or 404."""
        _, denied = self._authorized(request)
        if denied:
            return denied
        scenario = self._scenario(request)
        if scenario is None or (media and scenario.media not in media):
            return _error(404, "not.found", "Conversation not found")
        return scenario

    async def _conversation_view(self, request: Request, view: str) -> Response:
        scenario = self._conversation_of(request)
        if isinstance(scenario, Response):
            return scenario
        render = scenario.conversation_json if view == "conversation" else scenario.analytics_json
        return JSONResponse(render(self.now_ms()))

    async def conversation(self, request: Request) -> Response:
        return await self._conversation_view(request, "conversation")

    async def analytics_details(self, request: Request) -> Response:
        return await self._conversation_view(request, "analytics")

    async def analytics_query(self, request: Request) -> Response:
        """``POST /api/v2/analytics/conversations/details/query`` with the documented semantics
        (developer blog 2022-04-21, reference §6.4, §10 item 4): an interval ending after now
        is trimmed to now; the results are the conversations that started on any *day*
        (UTC) the interval touches; and while the interval reaches the last minute, pages
        shift as conversations come in, so each page after the first repeats the last row
        of the one before it.
        """
        _, denied = self._authorized(request)
        if denied:
            return denied
        try:
            body = await request.json()
            start_text, end_text = str(body["interval"]).split("/")
            start_ms = int(parse_time(start_text).timestamp() * 1000)
            end_ms = int(parse_time(end_text).timestamp() * 1000)
        except (ValueError, KeyError, TypeError):
            return _error(400, "bad.request", "interval is required: start/end ISO-8601")
        predicates = [p for f in body.get("conversationFilters", []) for p in f.get("predicates", [])]
        need_end = next(
            (p.get("operator") for p in predicates if p.get("dimension") == "conversationEnd"), None
        )
        now = self.now_ms()
        end_ms = min(end_ms, now)
        first_day = start_ms - start_ms % DAY_MS
        after_last_day = end_ms - (end_ms - 1) % DAY_MS - 1 + DAY_MS
        found = [
            s
            for s in sorted(self.scenarios.values(), key=lambda s: s.start_ms)
            if first_day <= s.start_ms < after_last_day
            and s.start_ms <= now
            and (need_end != "exists" or s.hangup_ms <= now)
            and (need_end != "notExists" or s.hangup_ms > now)
        ]
        paging = body.get("paging", {})
        size, number = int(paging.get("pageSize", 25)), int(paging.get("pageNumber", 1))
        shift = 1 if number > 1 and end_ms >= now - 60_000 else 0
        page = found[(number - 1) * size - shift : number * size - shift]
        return JSONResponse({"conversations": [s.analytics_json(now) for s in page], "totalHits": len(found)})

    def _signature(self, conversation_id: str, communication_id: str, expires: int) -> str:
        message = f"{conversation_id}/{communication_id}/{expires}".encode()
        return hmac.new(self.signing_key, message, hashlib.sha256).hexdigest()

    async def transcript_url(self, request: Request) -> Response:
        _, denied = self._authorized(request)
        if denied:
            return denied
        scenario = self._scenario(request)
        communication_id = request.path_params["communication_id"]
        if self.faults.transcript_status is not None:
            status = self.faults.transcript_status
            return _error(status, "transcript.unavailable", "Transcript unavailable")
        ready_ms = (scenario.hangup_ms if scenario else 0) + int(self.settings.transcript_delay_s * 1000)
        if (
            scenario is None
            or scenario.media not in ("voice", "callback")
            or scenario.communication_id != communication_id
            or ready_ms > self.now_ms()
        ):
            return _error(404, "not.found", "Transcript not found")
        expires = int(time.time()) + 3600
        signature = self._signature(scenario.conversation_id, communication_id, expires)
        url = (
            f"{self.base_url}/_presigned/transcripts/{scenario.conversation_id}/{communication_id}.json"
            f"?X-Amz-Expires={expires}&X-Amz-Signature={signature}"
        )
        return JSONResponse({"url": url})

    async def presigned_transcript(self, request: Request) -> Response:
        conversation_id = request.path_params["conversation_id"]
        communication_id = request.path_params["communication_id"]
        try:
            expires = int(request.query_params.get("X-Amz-Expires", "0"))
        except ValueError:
            expires = 0
        signature = request.query_params.get("X-Amz-Signature", "")
        expected = self._signature(conversation_id, communication_id, expires)
        scenario = self.scenarios.get(conversation_id)
        if scenario is None or not hmac.compare_digest(signature, expected) or expires < time.time():
            return Response(
                "<Error><Code>AccessDenied</Code></Error>", status_code=403, media_type="application/xml"
            )
        return JSONResponse(scenario.transcript_json())

    async def recordings(self, request: Request) -> Response:
        """``GET /api/v2/conversations/{id}/recordings``: a digital conversation's text once it ended.

        While a conversation is going on (or its recordings are not ready) the service
        answers 202 with no body; a voice call's audio recordings are not served.
        """
        scenario = self._conversation_of(request)
        if isinstance(scenario, Response):
            return scenario
        if scenario.media in ("voice", "callback"):
            return JSONResponse([])
        if scenario.hangup_ms > self.now_ms():
            return Response(status_code=202)
        return JSONResponse(scenario.recordings_json())

    async def messaging_conversation(self, request: Request) -> Response:
        """``GET /api/v2/conversations/messages/{id}`` (``MessageConversation``)."""
        scenario = self._conversation_of(request, "message")
        if isinstance(scenario, Response):
            return scenario
        return JSONResponse(scenario.messaging_conversation_json(self.now_ms()))

    async def messages_bulk(self, request: Request) -> Response:
        """``POST /api/v2/conversations/messages/{id}/messages/bulk``: at most 1,000 ids."""
        scenario = self._conversation_of(request, "message")
        if isinstance(scenario, Response):
            return scenario
        try:
            ids = [str(i) for i in await request.json()]
        except (ValueError, TypeError):
            return _error(400, "bad.request", "Expected a list of message ids")
        if len(ids) > BULK_MESSAGES:
            return _error(400, "bad.request", f"At most {BULK_MESSAGES} message ids")
        return JSONResponse(scenario.messages_json(ids))

    async def status_route(self, request: Request) -> Response:
        return JSONResponse(self.status())

    # --- running ------------------------------------------------------------------------

    def app(self) -> Any:
        """The ASGI application; every response's ``Date`` header is the simulated clock."""
        api = "/api/v2"
        starlette = Starlette(
            routes=[
                Route("/oauth/token", self.oauth_token, methods=["POST"]),
                Route(f"{api}/notifications/channels", self.create_channel, methods=["POST"]),
                Route(f"{api}/notifications/channels", self.list_channels, methods=["GET"]),
                Route(f"{api}/notifications/channels/{{channel_id}}", self.channel, methods=["HEAD"]),
                Route(
                    f"{api}/notifications/channels/{{channel_id}}/subscriptions",
                    self.subscriptions,
                    methods=["GET", "POST", "PUT", "DELETE"],
                ),
                Route(f"{api}/routing/queues", self.queues_list, methods=["GET"]),
                Route(f"{api}/routing/queues/{{queue_id}}", self.queue, methods=["GET"]),
                Route(f"{api}/conversations/{{conversation_id}}", self.conversation, methods=["GET"]),
                Route(
                    f"{api}/conversations/{{conversation_id}}/recordings", self.recordings, methods=["GET"]
                ),
                Route(
                    f"{api}/conversations/messages/{{conversation_id}}",
                    self.messaging_conversation,
                    methods=["GET"],
                ),
                Route(
                    f"{api}/conversations/messages/{{conversation_id}}/messages/bulk",
                    self.messages_bulk,
                    methods=["POST"],
                ),
                Route(
                    f"{api}/analytics/conversations/{{conversation_id}}/details",
                    self.analytics_details,
                    methods=["GET"],
                ),
                Route(f"{api}/analytics/conversations/details/query", self.analytics_query, methods=["POST"]),
                Route(
                    f"{api}/speechandtextanalytics/conversations/{{conversation_id}}"
                    "/communications/{communication_id}/transcripturl",
                    self.transcript_url,
                    methods=["GET"],
                ),
                Route(
                    "/_presigned/transcripts/{conversation_id}/{communication_id}.json",
                    self.presigned_transcript,
                    methods=["GET"],
                ),
                Route("/_emulator/status", self.status_route, methods=["GET"]),
                Route("/_emulator/faults", self.faults_route, methods=["POST"]),
                WebSocketRoute("/channels/{channel_id}", self.websocket),
            ]
        )

        async def with_simulated_date(scope: Any, receive: Any, send: Any) -> None:
            async def send_with_date(message: Any) -> None:
                if message["type"] == "http.response.start":
                    date = email.utils.format_datetime(
                        datetime.fromtimestamp(self.now_ms() / 1000, UTC), usegmt=True
                    ).encode()
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                    message = {**message, "headers": [*headers, (b"date", date)]}
                await send(message)

            await starlette(scope, receive, send_with_date)

        return with_simulated_date

    def _schedule(self) -> None:
        """Lay out every conversation, the first ``start_delay_s`` (real) from now."""
        first_start = self.now_ms() + int(self.settings.start_delay_s * self.settings.speed * 1000)
        for index, conversation in enumerate(self.conversations):
            start_ms = first_start + int(index * self.settings.start_interval_s * 1000)
            scenario = build_scenario(
                conversation,
                start_ms=start_ms,
                rng=self.rng,
                organization_id=self.organization_id,
                late_utterance=self.rng.random() < self.settings.late_utterance_rate,
            )
            self.scenarios[scenario.conversation_id] = scenario

    async def _play(self) -> None:
        if self.settings.wait_for_subscriber:
            await self._subscribed.wait()
            self._schedule()
        events: list[tuple[int, int, str, str]] = []
        for scenario in self.scenarios.values():
            for frame in scenario.events:
                events.append((frame.due_ms, len(events), frame.text, frame.topic))
        events.sort()
        for due_ms, _, text, topic in events:
            await trio.sleep_until(self.real_time_of(due_ms))
            transcription = topic.endswith(".transcription")
            if transcription and self._held is None and self.rng.random() < self.settings.reorder_rate:
                self._held = (text, topic)  # sent after the next message (reordering fault)
                continue
            self.publish(text, topic)
            if transcription and self.rng.random() < self.settings.duplicate_rate:
                self.publish(text, topic)
            if self._held is not None:
                self.publish(*self._held)
                self._held = None
        if self._held is not None:
            self.publish(*self._held)

    async def run(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; reports the bound URL (``http://host:port``) when listening.

        Clients are handed URLs under ``settings.public_url`` when it is set, else under
        the bound URL (:attr:`base_url`).
        """
        config = HypercornConfig()
        config.bind = [f"{host}:{port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("indexer.emulator.hypercorn")
        config.graceful_timeout = 1
        config.include_date_header = False  # the app sends the simulated clock instead
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            app: Any = self.app()  # Starlette's ASGI callable is typed looser than hypercorn's annotation
            binds = await nursery.start(lambda task_status: serve(app, config, task_status=task_status))
            self.base_url = (self.settings.public_url or binds[0]).rstrip("/")
            self.epoch_ms = int(time.time() * 1000)
            self.t0 = trio.current_time()
            if not self.settings.wait_for_subscriber:
                self._schedule()
            nursery.start_soon(self._play)
            nursery.start_soon(self._close_expired_channels)
            if self._sqs is not None:
                nursery.start_soon(self._sqs.run)
            task_status.started(binds[0])


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(ms / 1000, UTC))
