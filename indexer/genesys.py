"""The Genesys Cloud REST client: OAuth token, notification channels, subscriptions, queues.

::

    async with httpx.AsyncClient() as http:
        client = GenesysClient(http, settings)
        channel = await client.create_channel()
        await client.replace_subscriptions(channel.id, [queue_conversations_topic(qid)])

Retries (with :mod:`stamina`): 429 waits for ``Retry-After`` seconds (reference §2.4,
§8 item 12), 5xx and transport errors back off exponentially with jitter. A 401 renews
the token once. Other errors raise :class:`~indexer.errors.GenesysError` naming the
endpoint and status, never a token or secret.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Iterable
from typing import Any, Final

import httpx
import stamina
import trio

from indexer.config import GenesysSettings
from indexer.errors import AuthenticationError, GenesysError, MalformedMessage, error_code
from indexer.models import (
    AnalyticsConversation,
    Channel,
    ChannelTopic,
    ChannelTopicListing,
    MessageData,
    MessagingConversation,
    PostCallTranscript,
    Queue,
    QueueListing,
    Recording,
    TextMessageListing,
    TokenResponse,
    TranscriptUrl,
)
from indexer.serialization import parse_time, structure

__all__ = ["API_ERRORS", "GenesysClient"]

log = logging.getLogger(__name__)

#: Renew the token when less than this share of its lifetime is left.
TOKEN_RENEW_FRACTION: Final = 0.1
#: …or when less than this many seconds are left, whichever comes first.
TOKEN_RENEW_MARGIN_S: Final = 60.0
REQUEST_ATTEMPTS: Final = 8
REQUEST_TIMEOUT_S: Final = 120.0
#: ``maxWaitMs`` of a recordings request: how long Genesys may hold it while not ready.
RECORDINGS_MAX_WAIT_MS: Final = 5000
QUEUE_PAGE_SIZE: Final = 100
ANALYTICS_PAGE_SIZE: Final = 100
#: Most message ids one bulk request may carry (``…/messages/bulk``).
BULK_MESSAGES: Final = 1000
#: What a Platform API call raises once the client's own retries are spent: callers that
#: can try again later catch these (:class:`~indexer.errors.AuthenticationError`, a
#: subclass of ``GenesysError``, is for them to stop on first).
API_ERRORS: Final = (GenesysError, httpx.HTTPError)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


class _Retryable(GenesysError):
    """A 429 or 5xx answer: retried; what a call raises once its retries are spent."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code}, still after retrying",
            status=response.status_code,
        )
        self.response = response


def _backoff(exc: Exception) -> bool | float:
    """stamina hook: retry 429 after ``Retry-After`` s, other retryable errors with backoff."""
    if isinstance(exc, _Retryable):
        retry_after = exc.response.headers.get("retry-after")
        if exc.response.status_code == 429 and retry_after:
            try:
                return max(float(retry_after), 0.0)
            except ValueError:
                return True
        return True
    return isinstance(exc, httpx.TransportError)


class GenesysClient:
    """REST calls to one Genesys Cloud organization, with a cached client-credentials token."""

    def __init__(self, http: httpx.AsyncClient, settings: GenesysSettings) -> None:
        self._http = http
        self._settings = settings
        self._token: TokenResponse | None = None
        self._token_renew_at = 0.0
        self._token_expires_at = 0.0
        self._token_lock = trio.Lock()
        self.token_renewals = 0
        self._clock_offset_ms = 0

    def _observe_clock(self, response: httpx.Response) -> None:
        date = response.headers.get("date")
        if date:
            try:
                server = email.utils.parsedate_to_datetime(date)
            except (TypeError, ValueError):
                return
            self._clock_offset_ms = int(server.timestamp() * 1000) - int(time.time() * 1000)

    def server_now_ms(self) -> int:
        """The service's clock, epoch ms, from the ``Date`` header of the latest response.

        Gaps are measured on this clock so that local clock skew cannot hide a
        conversation from recovery (second precision: callers pad by a few seconds).
        """
        return int(time.time() * 1000) + self._clock_offset_ms

    # --- OAuth (reference §2) -----------------------------------------------------------

    async def _fetch_token(self) -> TokenResponse:
        url = f"{self._settings.login_base_url}/oauth/token"
        auth = httpx.BasicAuth(self._settings.client_id, self._settings.client_secret)
        async for attempt in stamina.retry_context(
            on=_backoff, attempts=REQUEST_ATTEMPTS, timeout=REQUEST_TIMEOUT_S
        ):
            with attempt:
                response = await self._http.post(url, data={"grant_type": "client_credentials"}, auth=auth)
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(response)
        if response.status_code in (400, 401, 403):
            raise AuthenticationError(
                "Genesys Cloud refused the client credentials (GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET): "
                f"{response.status_code} {_error_code(response)}",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise GenesysError(f"POST /oauth/token: {response.status_code}", status=response.status_code)
        token: TokenResponse = self._parse(response, TokenResponse)
        return token

    async def access_token(self, *, renew: bool = False) -> str:
        """A valid access token, renewed before it expires (or now, with ``renew``).

        :raises AuthenticationError: the credentials were refused.
        """
        async with self._token_lock:
            if renew or self._token is None or trio.current_time() >= self._token_renew_at:
                self._token = await self._fetch_token()
                lifetime = float(self._token.expires_in)
                margin = max(lifetime * TOKEN_RENEW_FRACTION, min(TOKEN_RENEW_MARGIN_S, lifetime / 2))
                self._token_renew_at = trio.current_time() + lifetime - margin
                self._token_expires_at = trio.current_time() + lifetime
                self.token_renewals += 1
                log.info("access token obtained, valid for %d s", self._token.expires_in)
            return self._token.access_token

    @property
    def token_valid(self) -> bool:
        """Whether a token was obtained and has not expired (readiness, not a guarantee)."""
        return self._token is not None and trio.current_time() < self._token_expires_at

    @property
    def token_renew_at(self) -> float:
        """When (trio time) the current token will be renewed; channels it created go then."""
        return self._token_renew_at

    # --- Platform API -------------------------------------------------------------------

    async def request(
        self, method: str, path: str, *, json: Any = None, params: Any = None
    ) -> httpx.Response:
        """One Platform API call with the bearer token and the retry policy above.

        :param path: the API path, e.g. ``/api/v2/notifications/channels``.
        :returns: the response; 2xx and 404 are returned, not raised.
        :raises GenesysError: any other status, or a 429 or 5xx still after retries.
        """
        url = f"{self._settings.api_base_url}{path}"
        renewed = False
        while True:
            token = await self.access_token()
            async for attempt in stamina.retry_context(
                on=_backoff, attempts=REQUEST_ATTEMPTS, timeout=REQUEST_TIMEOUT_S
            ):
                with attempt:
                    response = await self._http.request(
                        method, url, json=json, params=params, headers={"Authorization": f"Bearer {token}"}
                    )
                    self._observe_clock(response)
                    if response.status_code == 429 or response.status_code >= 500:
                        log.warning("%s %s: %d, retrying", method, path, response.status_code)
                        raise _Retryable(response)
            if response.status_code == 401 and not renewed:
                await self.access_token(renew=True)
                renewed = True
                continue
            if response.is_success or response.status_code == 404:
                return response
            raise GenesysError(
                f"{method} {path}: {response.status_code} {_error_code(response)}",
                status=response.status_code,
            )

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        """The JSON body of ``response``.

        :raises GenesysError: it is not JSON (the message names the path, never the body).
        """
        try:
            return response.json()
        except ValueError:
            raise GenesysError(f"unexpected response from {response.request.url.path}: not JSON") from None

    @staticmethod
    def _parse_json(data: Any, cls: type[Any], what: str) -> Any:
        """``data`` structured as ``cls``.

        :raises GenesysError: it does not fit (the message names ``what`` and the fields).
        """
        try:
            return structure(data, cls)
        except MalformedMessage as exc:
            raise GenesysError(f"unexpected {what}: {exc.reason}") from None

    def _parse(self, response: httpx.Response, cls: type[Any]) -> Any:
        """The JSON body of ``response`` structured as ``cls`` (:meth:`_json`, :meth:`_parse_json`)."""
        return self._parse_json(self._json(response), cls, f"response from {response.request.url.path}")

    async def create_channel(self) -> Channel:
        """``POST /api/v2/notifications/channels`` (reference §3.2)."""
        response = await self.request("POST", "/api/v2/notifications/channels")
        channel: Channel = self._parse(response, Channel)
        return channel

    async def channel_exists(self, channel_id: str) -> bool:
        """``HEAD /api/v2/notifications/channels/{id}``: 200 if valid, 404 if not (reference §3.2)."""
        response = await self.request("HEAD", f"/api/v2/notifications/channels/{channel_id}")
        return response.status_code == 200

    async def _subscriptions(
        self, method: str, channel_id: str, topics: Iterable[str] | None
    ) -> list[ChannelTopic]:
        path = f"/api/v2/notifications/channels/{channel_id}/subscriptions"
        body = None if topics is None else [{"id": t} for t in topics]
        # ignoreErrors: a topic refused for a permission is answered "Rejected" instead of
        # failing the whole request (reference §10 item 6).
        params = None if topics is None else {"ignoreErrors": "true"}
        response = await self.request(method, path, json=body, params=params)
        if response.status_code == 404:
            raise GenesysError(f"{method} {path}: channel not found", status=404)
        if topics is not None and b'"Rejected"' not in response.content:
            # An answer to a change lists every topic of the channel (up to 1,000, 1.7 ms to
            # structure): read as an acknowledgement unless a topic in it was rejected.
            return []
        listing: ChannelTopicListing = (
            self._parse(response, ChannelTopicListing) if response.content else ChannelTopicListing()
        )
        for topic in listing.entities:
            if topic.state and topic.state != "Permitted":
                log.warning("subscription %s %s: %s", topic.id, topic.state, topic.rejection_reason or "")
        if topics is not None:
            return [topic for topic in listing.entities if topic.state and topic.state != "Permitted"]
        return list(listing.entities)

    async def get_subscriptions(self, channel_id: str) -> list[ChannelTopic]:
        """``GET …/subscriptions``: the channel's current topics (reference §3.3)."""
        return await self._subscriptions("GET", channel_id, None)

    async def add_subscriptions(self, channel_id: str, topics: Iterable[str]) -> list[ChannelTopic]:
        """``POST …/subscriptions``: add topics to the channel's list (reference §3.3).

        :returns: the topics the service did not permit (``state`` ``Rejected``, SDK
            ``ChannelTopic``), logged; the rest of its answer is not structured.
        """
        return await self._subscriptions("POST", channel_id, topics)

    async def replace_subscriptions(self, channel_id: str, topics: Iterable[str]) -> list[ChannelTopic]:
        """``PUT …/subscriptions``: replace the channel's whole list (reference §3.3).

        :returns: the topics the service did not permit, as :meth:`add_subscriptions`.
        """
        return await self._subscriptions("PUT", channel_id, topics)

    async def resolve_queues(self, names_or_ids: Iterable[str]) -> dict[str, str]:
        """Queue id → name for each configured queue name or id.

        Names are looked up with ``GET /api/v2/routing/queues?name=…`` (the service treats
        ``*`` as a wildcard and may return other queues; the name is matched here, without
        regard to case, reference §10 item 9), ids with ``GET /api/v2/routing/queues/{id}``.

        :raises ConfigError: a queue does not exist.
        """
        from indexer.errors import ConfigError

        resolved: dict[str, str] = {}
        for wanted in names_or_ids:
            if _UUID.match(wanted):
                response = await self.request("GET", f"/api/v2/routing/queues/{wanted}")
                if response.status_code == 404:
                    raise ConfigError(f"GENESYS_QUEUES: no queue with id {wanted}")
                queue: Queue = self._parse(response, Queue)
                resolved[queue.id] = queue.name or wanted
                continue
            page, found = 1, None
            while found is None:
                response = await self.request(
                    "GET",
                    "/api/v2/routing/queues",
                    params={"name": wanted, "pageSize": QUEUE_PAGE_SIZE, "pageNumber": page},
                )
                listing: QueueListing = self._parse(response, QueueListing)
                found = next(
                    (q for q in listing.entities if (q.name or "").casefold() == wanted.casefold()), None
                )
                last_page = len(listing.entities) < QUEUE_PAGE_SIZE or page >= (listing.page_count or page)
                if found is None and last_page:
                    raise ConfigError(f"GENESYS_QUEUES: no queue named {wanted!r}")
                page += 1
            resolved[found.id] = found.name or wanted
        return resolved

    async def get_json(self, path: str) -> Any | None:
        """``GET`` a Platform API path: the JSON body, or ``None`` on 404.

        :raises GenesysError: the call failed, or the body is not JSON.
        """
        response = await self.request("GET", path)
        return None if response.status_code == 404 else self._json(response)

    async def conversation(self, conversation_id: str) -> Any | None:
        """``GET /api/v2/conversations/{id}`` (reference §6.3), ``None`` if unknown."""
        return await self.get_json(f"/api/v2/conversations/{conversation_id}")

    async def post_call_transcript(
        self, conversation_id: str, communication_id: str
    ) -> PostCallTranscript | None:
        """The post-call transcript of one communication (reference §6.1-6.2).

        ``GET …/transcripturl`` (SDK ``TranscriptUrl``) gives a pre-signed URL, fetched
        without the bearer token. ``None`` while there is none (404: not ready yet, or no
        transcription).

        :raises GenesysError: another status, or a body that is not a transcript.
        """
        found = await self.get_json(
            f"/api/v2/speechandtextanalytics/conversations/{conversation_id}"
            f"/communications/{communication_id}/transcripturl"
        )
        link: TranscriptUrl = self._parse_json(found or {}, TranscriptUrl, "transcripturl")
        if not link.url:
            return None
        async for attempt in stamina.retry_context(
            on=_backoff, attempts=REQUEST_ATTEMPTS, timeout=REQUEST_TIMEOUT_S
        ):
            with attempt:
                response = await self._http.get(link.url)
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(response)
        if response.status_code != 200:
            return None
        transcript: PostCallTranscript = self._parse_json(
            self._json(response), PostCallTranscript, "post-call transcript"
        )
        return transcript

    async def conversation_details(self, conversation_id: str) -> AnalyticsConversation | None:
        """``GET /api/v2/analytics/conversations/{id}/details`` (reference §6.4), ``None`` if unknown.

        :raises GenesysError: the call failed, or the body is not a conversation.
        """
        found = await self.get_json(f"/api/v2/analytics/conversations/{conversation_id}/details")
        if found is None:
            return None
        details: AnalyticsConversation = self._parse_json(
            found, AnalyticsConversation, "conversation details"
        )
        return details

    async def recordings(self, conversation_id: str) -> list[Recording] | None:
        """``GET /api/v2/conversations/{id}/recordings`` (SDK ``RecordingApi.get_conversation_recordings``).

        Permission ``recording:recording:view`` or ``recording:recordingSegment:view``.
        :returns: the recordings (chat ``transcript``, ``emailTranscript``,
            ``messagingTranscript``); ``None`` while not ready (202, 404 or an empty list).
        """
        response = await self.request(
            "GET",
            f"/api/v2/conversations/{conversation_id}/recordings",
            params={"maxWaitMs": RECORDINGS_MAX_WAIT_MS, "formatId": "NONE"},
        )
        if response.status_code != 200 or not response.content:
            return None
        data = self._json(response)
        if not isinstance(data, list) or not data:
            return None
        what = f"response from {response.request.url.path}"
        return [self._parse_json(item, Recording, what) for item in data if item is not None]

    async def messaging_conversation(self, conversation_id: str) -> MessagingConversation | None:
        """``GET /api/v2/conversations/messages/{id}`` (SDK ``MessageConversation``), ``None`` on 404.

        Permission ``conversation:message:view`` or ``conversation:webmessaging:view``.
        """
        response = await self.request("GET", f"/api/v2/conversations/messages/{conversation_id}")
        if response.status_code == 404:
            return None
        found: MessagingConversation = self._parse(response, MessagingConversation)
        return found

    async def messages(self, conversation_id: str, message_ids: Iterable[str]) -> list[MessageData]:
        """The messages with ``message_ids``: ``POST /api/v2/conversations/messages/{id}/messages/bulk``,
        at most :data:`BULK_MESSAGES` ids a call (SDK ``TextMessageListing``)."""
        ids = list(dict.fromkeys(message_ids))
        found: list[MessageData] = []
        for begin in range(0, len(ids), BULK_MESSAGES):
            response = await self.request(
                "POST",
                f"/api/v2/conversations/messages/{conversation_id}/messages/bulk",
                json=ids[begin : begin + BULK_MESSAGES],
            )
            if response.status_code == 404:
                continue
            listing: TextMessageListing = self._parse(response, TextMessageListing)
            found.extend(listing.entities)
        return found

    async def ended_conversations(
        self, start: str, end: str, queue_ids: Iterable[str]
    ) -> list[AnalyticsConversation]:
        """Conversations on ``queue_ids`` that started in ``start/end`` and have ended (§6.4).

        ``POST /api/v2/analytics/conversations/details/query``, every page. The service
        returns every conversation that started on a *day* the interval touches, and pages
        of an interval near now may repeat rows (developer blog 2022-04-21, reference
        §10 item 4): rows are kept once each and only when ``conversationStart`` is in the
        interval.

        :param start: ISO-8601 interval start; ``end`` its end.
        :returns: the rows (``AnalyticsConversationWithoutAttributes``); a row without a
            ``conversationId`` is logged and left out.
        """
        begin_at, end_at = parse_time(start), parse_time(end)
        found: dict[str, AnalyticsConversation] = {}
        page = 1
        while True:
            body = {
                "interval": f"{start}/{end}",
                "order": "asc",
                "orderBy": "conversationStart",
                "paging": {"pageSize": ANALYTICS_PAGE_SIZE, "pageNumber": page},
                "segmentFilters": [
                    {
                        "type": "or",
                        "predicates": [
                            {"type": "dimension", "dimension": "queueId", "operator": "matches", "value": q}
                            for q in queue_ids
                        ],
                    }
                ],
                "conversationFilters": [
                    {"type": "and", "predicates": [{"type": "dimension", "dimension": "conversationEnd",
                                                    "operator": "exists"}]}
                ],
            }  # fmt: skip
            response = await self.request("POST", "/api/v2/analytics/conversations/details/query", json=body)
            data = self._json(response)
            rows = data.get("conversations") if isinstance(data, dict) else None
            rows = rows if isinstance(rows, list) else []
            for row in rows:
                try:
                    conversation = structure(row, AnalyticsConversation, what="conversations[]")
                except MalformedMessage as exc:
                    log.warning("analytics row left out: %s", exc.reason)
                    continue
                started = conversation.conversation_start
                if started is None or begin_at <= started < end_at:  # no start: keep (idempotent)
                    found.setdefault(conversation.conversation_id, conversation)
            if len(rows) < ANALYTICS_PAGE_SIZE:
                return list(found.values())
            page += 1


def _error_code(response: httpx.Response) -> str:
    """The ``error`` / ``code`` field of an error body, for messages (no other content)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return error_code(body.get("error") or body.get("code"))
    return ""
