"""One corpus conversation turned into what Genesys Cloud would emit, on a simulated clock.

Every payload is built here as plain JSON in the shape of the official SDK model it
stands for (``purecloudplatformclientv2``; ``tests/test_sdk_conformance.py`` proves each
one deserializes through that model without loss), never through the worker's own
models, so that the worker is tested against the service's shapes, not its own.

A **voice call** (times in simulated seconds from its start):

- 0: the customer is connected to an IVR flow (``ivr`` participant);
- ``IVR_S``: the IVR transfers the call to the queue: an ``acd`` participant whose
  ``conversationRoutingData.queue`` carries only an ``id`` (as real events do);
- then an agent is alerted (``conversationRoutingData.queue`` is ``{}``), answers, and the
  ``acd`` leg ends; a transcription session starts on the customer's call with a
  status-only ``SESSION_ONGOING`` message (and another every 5 minutes, reference §4.2);
- turns follow at a speaking rate; finished utterances are grouped into transcription
  messages every ``GROUP_WINDOW_S`` and delivered ``LATENCY_S`` later (§4.1-4.2); some
  calls are put on hold for a while, and a call whose corpus entry names
  ``transfer_to`` is blind-transferred half-way to that queue (a second ``acd`` and a
  second agent: one conversation on two followed queues);
- the customer hangs up: every participant ends, the agents enter after-call work;
  ``SESSION_ENDED`` follows the last transcript; after-call work completes ``ACW_S``
  later with a wrap-up code.

Outbound calls have no IVR: the agent dials the customer from the queue.

A queue event is sent for every state change (``QueueConversationEventTopicConversation``,
a snapshot of the whole conversation), not only the first and the last.

**Messaging, chat and email** conversations (corpus ``media``) never produce
transcription messages: the queue events carry the message ids and times only
(``messages[].messages[]``), and the text is served by the Platform API once the
conversation ends (recordings; messaging conversation and bulk messages).

Raw ASR text (``transcript``, ``words``) is lower case without sentence punctuation;
``decoratedTranscript`` is the corpus text as written.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from indexer.emulator.corpus import CorpusConversation
from indexer.topics import queue_conversations_topic, transcription_topic

__all__ = ["Frame", "Scenario", "asr_text", "build_scenario", "queue_id_for"]

IVR_S: Final = 4.0
QUEUE_WAIT_S: Final = 8.0
ALERT_S: Final = 2.0
WORDS_PER_S: Final = 2.6
GROUP_WINDOW_S: Final = 5.0
LATENCY_S: Final = 2.0
KEEPALIVE_S: Final = 300.0
ACW_S: Final = 20.0
HOLD_S: Final = 6.0
AGENTS: Final = 20
#: Share of voice calls put on hold once (the hold does not interrupt the turns).
HOLD_RATE: Final = 0.25
#: Seconds between two messages of a digital conversation (typing, reading).
MESSAGE_GAP_S: Final = 6.0
WRAPUP_CODES: Final = ("Resolved", "Follow-up needed", "Billing question", "Technical issue")

_QUOTES = "\"'\u201c\u201d\u2018\u2019"
_EDGE_PUNCTUATION = re.compile(rf"^[{_QUOTES}(\[]+|[{_QUOTES})\].,!?;:\u2026]+$")
_QUEUE_NAMESPACE = uuid.UUID("5f0c2a8e-8d3b-4f5e-9d0a-3c1b2a4d5e6f")
_WRAPUP_NAMESPACE = uuid.UUID("0b3a6f4e-2c1d-4e5f-8a9b-7c6d5e4f3a2b")
_MEDIA_KEY = {"voice": "calls", "message": "messages", "chat": "chats", "email": "emails"}
#: Analytics sessions: the list a media's communications are in, and their ``mediaType``.
_SESSIONS = {
    "voice": (("calls", "voice"),),
    "callback": (("callbacks", "callback"), ("calls", "voice")),
    "message": (("messages", "message"),),
    "chat": (("chats", "chat"),),
    "email": (("emails", "email"),),
}


def asr_text(text: str) -> str:
    """What a speech recogniser would emit for ``text``: lower case, no sentence punctuation."""
    spoken = text.lower().replace("(", " ").replace(")", " ")
    tokens = (_EDGE_PUNCTUATION.sub("", token) for token in spoken.split())
    return " ".join(token for token in tokens if token)


def queue_id_for(name: str) -> str:
    """A stable queue id for a queue name."""
    return str(uuid.uuid5(_QUEUE_NAMESPACE, name))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.frozen
class Utterance:
    """An utterance (voice) or a message (digital) as played: absolute times in epoch ms.

    :ivar utterance_id: ``utteranceId`` of a voice utterance; the message id of a message.
    """

    utterance_id: str
    speaker: str
    text: str
    raw: str
    start_ms: int
    duration_ms: int
    confidence: float


@attrs.frozen
class Frame:
    """One notification: when it is due (epoch ms), its topic and its JSON envelope."""

    due_ms: int
    topic: str
    envelope: dict[str, Any]

    @property
    def text(self) -> str:
        """The WebSocket text frame."""
        return json.dumps(self.envelope, separators=(",", ":"))

    @property
    def body(self) -> dict[str, Any]:
        """The ``eventBody``."""
        body: dict[str, Any] = self.envelope["eventBody"]
        return body


@attrs.frozen
class Scenario:
    """Everything the emulator serves about one conversation.

    :ivar media: ``voice``, ``message``, ``chat`` or ``email``.
    :ivar communication_id: the transcribed communication (the customer's call); for
        digital conversations the customer's communication.
    :ivar queues: ``(id, name)`` of every queue the conversation was routed through.
    :ivar events: notifications in due order.
    :ivar snapshots: ``(epoch ms, queue topic eventBody)`` for REST reads.
    """

    conversation_id: str
    communication_id: str
    media: str
    message_type: str | None
    queues: tuple[tuple[str, str], ...]
    direction: str
    language: str
    start_ms: int
    hangup_ms: int
    session_start_ms: int
    utterances: tuple[Utterance, ...]
    events: tuple[Frame, ...]
    snapshots: tuple[tuple[int, dict[str, Any]], ...]
    organization_id: str
    subject: str | None = None

    @property
    def queue_id(self) -> str:
        """The first queue's id."""
        return self.queues[0][0]

    @property
    def queue_name(self) -> str:
        """The first queue's name."""
        return self.queues[0][1]

    def snapshot_at(self, now_ms: int) -> dict[str, Any] | None:
        """The conversation as it stands at ``now_ms``, or ``None`` before it starts."""
        current = None
        for at, snapshot in self.snapshots:
            if at <= now_ms:
                current = snapshot
        return current

    # --- REST views ---------------------------------------------------------------------

    def conversation_json(self, now_ms: int, base_url: str = "") -> dict[str, Any] | None:
        """``GET /api/v2/conversations/{id}`` (SDK ``Conversation``, reference §6.3).

        Participants carry ``queueName``; ``conversationRoutingData.queue`` is an
        ``AddressableEntityRef{id, selfUri}``, never a name.
        """
        snapshot = self.snapshot_at(now_ms)
        if snapshot is None:
            return None
        names = dict(self.queues)
        participants = []
        for p in snapshot["participants"]:
            rest = {k: v for k, v in p.items() if k not in ("conversationRoutingData",)}
            rest["startTime"] = p.get("connectedTime") or _iso(self.start_ms)
            routed = (p.get("conversationRoutingData") or {}).get("queue") or {}
            queue_id = p.get("queueId") or routed.get("id")
            if queue_id:
                rest["queueId"] = queue_id
                rest["queueName"] = names.get(queue_id, "")
            if routed.get("id"):
                rest["conversationRoutingData"] = {
                    "queue": {"id": routed["id"], "selfUri": f"/api/v2/routing/queues/{routed['id']}"}
                }
            participants.append(rest)
        body: dict[str, Any] = {
            "id": self.conversation_id,
            "startTime": _iso(self.start_ms),
            "participants": participants,
            "recordingState": "none",
            "selfUri": f"/api/v2/conversations/{self.conversation_id}",
        }
        if now_ms >= self.hangup_ms:
            body["endTime"] = _iso(self.hangup_ms)
        return body

    def analytics_json(self, now_ms: int) -> dict[str, Any] | None:
        """``AnalyticsConversationWithoutAttributes`` (``GET …/analytics/conversations/{id}/details``)."""
        snapshot = self.snapshot_at(now_ms)
        if snapshot is None:
            return None
        participants = []
        for p in snapshot["participants"]:
            sessions = []
            found = [(media, c) for key, media in _SESSIONS[self.media] for c in p.get(key, [])]
            for media_type, c in found:
                segment: dict[str, Any] = {
                    "segmentStart": c.get("connectedTime") or p.get("connectedTime") or _iso(self.start_ms),
                    "segmentType": {"acd": "alert", "ivr": "ivr"}.get(p["purpose"], "interact"),
                }
                if c.get("disconnectedTime"):
                    segment["segmentEnd"] = c["disconnectedTime"]
                routed = (p.get("conversationRoutingData") or {}).get("queue") or {}
                if p.get("queueId") or routed.get("id"):
                    segment["queueId"] = p.get("queueId") or routed["id"]
                session: dict[str, Any] = {
                    "sessionId": c["id"],
                    "mediaType": media_type,
                    "direction": c.get("direction", self.direction),
                    "segments": [segment],
                }
                if self.message_type:
                    session["messageType"] = self.message_type
                sessions.append(session)
            row = {"participantId": p["id"], "purpose": p["purpose"], "sessions": sessions}
            if p.get("userId"):
                row["userId"] = p["userId"]
            participants.append(row)
        body: dict[str, Any] = {
            "conversationId": self.conversation_id,
            "conversationStart": _iso(self.start_ms),
            "originatingDirection": self.direction,
            "participants": participants,
        }
        if now_ms >= self.hangup_ms:
            body["conversationEnd"] = _iso(self.hangup_ms)
        return body

    def transcript_json(self) -> dict[str, Any]:
        """The post-call transcript behind ``transcripturl`` (reference §6.2)."""
        return {
            "organizationId": self.organization_id,
            "conversationId": self.conversation_id,
            "communicationId": self.communication_id,
            "mediaType": "call",
            "conversationStartTime": self.start_ms,
            "participants": [
                {"participantPurpose": "customer", "startTimeMs": self.start_ms, "endTimeMs": self.hangup_ms},
                {
                    "participantPurpose": "agent",
                    "queueId": self.queue_id,
                    "startTimeMs": self.session_start_ms,
                    "endTimeMs": self.hangup_ms,
                },
            ],
            "transcripts": [
                {
                    "transcriptId": self.communication_id,
                    "language": self.language,
                    "engineId": "r2d2",
                    "phrases": [
                        {
                            "phraseIndex": i,
                            "participantPurpose": "internal" if u.speaker == "agent" else "external",
                            "text": u.raw,
                            "decoratedText": u.text,
                            "confidence": u.confidence,
                            "startTimeMs": u.start_ms,
                            "duration": {"milliseconds": u.duration_ms},
                        }
                        for i, u in enumerate(self.utterances)
                    ],
                }
            ],
        }

    def recordings_json(self) -> list[dict[str, Any]]:
        """``GET /api/v2/conversations/{id}/recordings`` of a digital conversation (``Recording[]``)."""
        recording: dict[str, Any] = {
            "id": str(uuid.uuid5(_WRAPUP_NAMESPACE, self.conversation_id)),
            "conversationId": self.conversation_id,
            "startTime": _iso(self.start_ms),
            "endTime": _iso(self.hangup_ms),
            "media": {"message": "message", "chat": "chat", "email": "email"}[self.media],
            "fileState": "AVAILABLE",
            "selfUri": f"/api/v2/conversations/{self.conversation_id}/recordings",
        }
        if self.media == "message":
            recording["messagingTranscript"] = [
                {
                    "id": u.utterance_id,
                    "timestamp": _iso(u.start_ms),
                    "purpose": u.speaker,
                    "messageText": u.text,
                }
                for u in self.utterances
            ]
        elif self.media == "chat":
            recording["transcript"] = [
                {
                    "id": u.utterance_id,
                    "body": u.text,
                    "bodyType": "STANDARD",
                    "utc": str(u.start_ms),
                    "participantPurpose": u.speaker,
                }
                for u in self.utterances
            ]
        else:
            customer, agent = "customer@example.net", "support@example.com"
            recording["emailTranscript"] = [
                {
                    "id": u.utterance_id,
                    "time": _iso(u.start_ms),
                    "subject": self.subject if i == 0 else f"Re: {self.subject}",
                    "textBody": u.text,
                    "from": {"email": customer if u.speaker == "customer" else agent},
                    "to": [{"email": agent if u.speaker == "customer" else customer}],
                }
                for i, u in enumerate(self.utterances)
            ]
        return [recording]

    def messaging_conversation_json(self, now_ms: int) -> dict[str, Any] | None:
        """``GET /api/v2/conversations/messages/{id}`` (SDK ``MessageConversation``)."""
        snapshot = self.snapshot_at(now_ms)
        if snapshot is None or self.media != "message":
            return None
        participants = []
        for p in snapshot["participants"]:
            for m in p.get("messages", []):
                participant: dict[str, Any] = {
                    "id": p["id"],
                    "purpose": p["purpose"],
                    "state": m["state"],
                    "direction": m["direction"],
                    "type": m["type"],
                    "messages": m.get("messages", []),
                }
                if p.get("endTime"):
                    participant["endTime"] = p["endTime"]
                participants.append(participant)
        return {
            "id": self.conversation_id,
            "participants": participants,
            "selfUri": f"/api/v2/conversations/messages/{self.conversation_id}",
        }

    def messages_json(self, message_ids: list[str]) -> dict[str, Any]:
        """``POST …/messages/{id}/messages/bulk`` (SDK ``TextMessageListing``); unknown ids are left out.

        Besides the messages, a typing event (``normalizedMessage.type`` ``Event``, no
        text) is known under each customer message's id + ``-typing``, as real listings
        mix events with messages.
        """
        wanted = set(message_ids)
        entities = []
        for u in self.utterances:
            direction = "inbound" if u.speaker == "customer" else "outbound"
            if u.utterance_id in wanted:
                entities.append(
                    {
                        "id": u.utterance_id,
                        "timestamp": _iso(u.start_ms),
                        "direction": direction,
                        "messengerType": self.message_type or "webmessaging",
                        "status": "received" if direction == "inbound" else "delivery-success",
                        "normalizedMessage": {
                            "type": "Text",
                            "text": u.text,
                            "direction": direction.capitalize(),
                        },
                    }
                )
            if f"{u.utterance_id}-typing" in wanted:
                entities.append(
                    {
                        "id": f"{u.utterance_id}-typing",
                        "timestamp": _iso(u.start_ms - 1000),
                        "direction": direction,
                        "messengerType": self.message_type or "webmessaging",
                        "status": "received",
                        "normalizedMessage": {"type": "Event", "direction": direction.capitalize()},
                    }
                )
        return {"entities": entities}


@attrs.define
class _Leg:
    """One participant as it changes over the conversation (mutable while laying it out)."""

    id: str
    purpose: str
    communication_id: str
    direction: str
    connected_ms: int | None = None
    state: str = "connected"
    end_ms: int | None = None
    disconnect_type: str | None = None
    queue_id: str | None = None
    routed_queue: dict[str, str] | None = None
    user_id: str | None = None
    held: bool = False
    acw: str | None = None
    acw_start_ms: int | None = None
    acw_end_ms: int | None = None
    wrapup: dict[str, Any] | None = None
    message_ids: list[tuple[str, int]] = attrs.field(factory=list)
    #: Callbacks: the id of this participant's ``callbacks[]`` entry, and whether the
    #: agent has dialled the customer yet (its ``calls[]`` entry exists from then on).
    callback_id: str | None = None
    dialed: bool = True

    def end(self, at_ms: int, disconnect_type: str) -> None:
        self.state, self.end_ms, self.disconnect_type, self.held = (
            "disconnected",
            at_ms,
            disconnect_type,
            False,
        )

    def _callback(self) -> dict[str, Any]:
        """The ``callbacks[]`` entry (``QueueConversationEventTopicCallback``)."""
        ended, alerting = self.end_ms is not None, self.state == "alerting"
        state = "disconnected" if ended else "alerting" if alerting else "connected"
        callback: dict[str, Any] = {
            "id": self.callback_id,
            "state": state,
            "direction": "outbound" if self.purpose == "agent" else "inbound",
            "held": False,
            "callbackNumbers": ["tel:+13125550147"],
            "provider": "PureCloud Callback",
        }
        if self.connected_ms is not None and state != "alerting":
            callback["connectedTime"] = _iso(self.connected_ms)
        if self.end_ms is not None:
            callback["disconnectedTime"] = _iso(self.end_ms)
            callback["disconnectType"] = self.disconnect_type
        return callback

    def json(self, media: str, message_type: str | None, subject: str | None) -> dict[str, Any]:
        """The participant as ``QueueConversationEventTopicParticipant``."""
        callback = media == "callback"
        media = "voice" if callback else media
        communication: dict[str, Any] = {"id": self.communication_id, "state": self.state, "held": self.held}
        if media != "chat":  # the topic's chat model has no direction
            communication["direction"] = self.direction
        if self.connected_ms is not None and self.state != "alerting":
            communication["connectedTime"] = _iso(self.connected_ms)
        if self.end_ms is not None:
            communication["disconnectedTime"] = _iso(self.end_ms)
            communication["disconnectType"] = self.disconnect_type
        if media == "voice":
            communication.update(recording=False, muted=False, provider="Edge")
        if media == "message":
            communication["type"] = message_type or "webmessaging"
            communication["messages"] = [
                {"messageId": mid, "messageTime": _iso(at), "messageStatus": "received"}
                for mid, at in self.message_ids
            ]
        if media == "email" and subject:
            communication["subject"] = subject
        if self.acw is not None:
            communication["afterCallWorkRequired"] = True
            acw: dict[str, Any] = {"state": self.acw}
            if self.acw_start_ms is not None:
                acw["startTime"] = _iso(self.acw_start_ms)
            if self.acw_end_ms is not None:
                acw["endTime"] = _iso(self.acw_end_ms)
            communication["afterCallWork"] = acw
        participant: dict[str, Any] = {"id": self.id, "purpose": self.purpose}
        if self.connected_ms is not None and self.state != "alerting":
            participant["connectedTime"] = _iso(self.connected_ms)
        if self.end_ms is not None:
            participant["endTime"] = _iso(self.end_ms)
        if self.user_id:
            participant["userId"] = self.user_id
        if self.queue_id:
            participant["queueId"] = self.queue_id
        if self.routed_queue is not None:
            participant["conversationRoutingData"] = {"queue": dict(self.routed_queue)}
        if self.purpose == "agent":
            participant["wrapupRequired"] = True
        if self.acw_start_ms is not None:
            participant["startAcwTime"] = _iso(self.acw_start_ms)
        if self.acw_end_ms is not None:
            participant["endAcwTime"] = _iso(self.acw_end_ms)
        if self.wrapup is not None:
            participant["wrapup"] = self.wrapup
        if callback:
            participant["callbacks"] = [self._callback()]
        participant[_MEDIA_KEY[media]] = [communication] if self.dialed else []
        return participant


def build_scenario(
    conversation: CorpusConversation,
    *,
    start_ms: int,
    rng: random.Random,
    organization_id: str,
    late_utterance: bool = False,
) -> Scenario:
    """Lay out one conversation starting at ``start_ms`` (epoch ms, simulated clock).

    :param late_utterance: deliver the last transcript message 3 s after ``SESSION_ENDED``
        (a fault the worker must absorb; voice only).
    """
    media = conversation.media
    direction = conversation.direction
    conversation_id = _uuid(rng)
    queue = (queue_id_for(conversation.queue), conversation.queue)
    queues = [queue]
    if conversation.transfer_to and conversation.transfer_to != conversation.queue:
        queues.append((queue_id_for(conversation.transfer_to), conversation.transfer_to))
    legs: list[_Leg] = []
    snapshots: list[tuple[int, dict[str, Any]]] = []
    message_type = (conversation.message_type or "webmessaging") if media == "message" else None
    subject = (conversation.subject or "Your enquiry") if media == "email" else None

    def leg(purpose: str, **fields: Any) -> _Leg:
        new = _Leg(id=_uuid(rng), purpose=purpose, communication_id=_uuid(rng), direction=direction, **fields)
        if media == "callback":
            new.callback_id, new.dialed = _uuid(rng), False
        legs.append(new)
        return new

    def snapshot(at_ms: int) -> None:
        body = {
            "id": conversation_id,
            "participants": [p.json(media, message_type, subject) for p in legs],
            "recordingState": "none",
        }
        snapshots.append((at_ms, json.loads(json.dumps(body))))

    def agent_user() -> str:
        return str(uuid.UUID(int=rng.randrange(AGENTS) + 1, version=4))

    customer = leg("customer", connected_ms=start_ms)
    voiced = media in ("voice", "callback")  # callbacks end in a call, which is transcribed
    # --- routing: IVR (inbound voice), the queue, an agent ----------------------------------
    cursor = start_ms
    if media == "voice" and direction == "inbound":
        ivr = leg("ivr", connected_ms=start_ms)
        snapshot(cursor)
        cursor += int(IVR_S * 1000)
        ivr.end(cursor, "transfer")
    if direction == "outbound" and media == "voice":
        agent = leg("agent", connected_ms=cursor, queue_id=queue[0], routed_queue={}, user_id=agent_user())
        customer.connected_ms, customer.state = None, "dialing"
        snapshot(cursor)
        cursor += int(ALERT_S * 1000)
        customer.connected_ms, customer.state = cursor, "connected"
        snapshot(cursor)
        session_start_ms = cursor
    else:

        def route_to(queue_id: str, at_ms: int) -> tuple[_Leg, int]:
            acd = leg("acd", connected_ms=at_ms, queue_id=queue_id, routed_queue={"id": queue_id})
            snapshot(at_ms)
            at_ms += int(QUEUE_WAIT_S * 1000) - int(ALERT_S * 1000)
            new_agent = leg(
                "agent", connected_ms=at_ms, queue_id=queue_id, routed_queue={}, user_id=agent_user()
            )
            new_agent.state = "alerting"
            snapshot(at_ms)
            at_ms += int(ALERT_S * 1000)
            new_agent.state, new_agent.connected_ms = "connected", at_ms
            acd.end(at_ms, "transfer")
            snapshot(at_ms)
            return new_agent, at_ms

        if media != "voice" or direction == "inbound":
            if media != "voice":
                snapshot(cursor)  # the customer's first message, or the callback request, arrives
            agent, cursor = route_to(queue[0], cursor)
        if media == "callback":  # the agent dials the number the customer left
            cursor += int(ALERT_S * 1000)
            for p in (customer, agent):
                p.dialed, p.direction, p.connected_ms = True, "outbound", p.connected_ms or cursor
            snapshot(cursor)
        session_start_ms = cursor

    # --- the turns ------------------------------------------------------------------------------
    utterances: list[Utterance] = []
    turn_cursor = session_start_ms + 1000
    for turn in conversation.turns:
        raw = asr_text(turn.text)
        if not raw:
            continue
        if voiced:
            duration = int(max(0.6, len(raw.split()) / WORDS_PER_S) * 1000)
            gap = int(rng.uniform(0.4, 1.2) * 1000)
        else:
            duration, gap = 0, int(rng.uniform(0.5, 1.5) * MESSAGE_GAP_S * 1000)
        utterances.append(
            Utterance(
                utterance_id=_uuid(rng),
                speaker=turn.speaker,
                text=turn.text,
                raw=raw,
                start_ms=turn_cursor,
                duration_ms=duration,
                confidence=round(rng.uniform(0.80, 0.99), 3),
            )
        )
        turn_cursor += duration + gap
    hangup_ms = turn_cursor + 1000

    # --- state changes while talking: hold, transfer, messages -------------------------------
    changes: list[tuple[int, Callable[[int], None]]] = []
    if voiced and len(utterances) >= 2 and rng.random() < HOLD_RATE:
        hold_at = utterances[len(utterances) // 2].start_ms - 500
        changes.append((hold_at, lambda at: setattr(agent, "held", True)))
        changes.append((hold_at + int(HOLD_S * 1000), lambda at: setattr(agent, "held", False)))
    if len(queues) > 1 and len(utterances) >= 2:
        transfer_at = utterances[len(utterances) // 2].start_ms - 3000
        target = queues[1][0]
        alert_ms = int(ALERT_S * 1000)

        def transfer(at: int) -> None:
            """Blind: the first agent leaves at once; the call goes to the second queue."""
            nonlocal agent
            agent.end(at, "transfer")
            agent.acw, agent.acw_start_ms = "pending", at
            acd = leg("acd", connected_ms=at, queue_id=target, routed_queue={"id": target})
            acd.end(at + alert_ms, "transfer")
            agent = leg(
                "agent", connected_ms=at + alert_ms, queue_id=target, routed_queue={}, user_id=agent_user()
            )

        consult: dict[str, _Leg] = {}

        def consult_start(at: int) -> None:
            """Consult: the customer is held while the first agent reaches the second queue."""
            agent.held = True
            consult["acd"] = leg("acd", connected_ms=at, queue_id=target, routed_queue={"id": target})

        def consult_answered(at: int) -> None:
            consult["acd"].end(at, "transfer")
            consult["agent"] = leg(
                "agent", connected_ms=at, queue_id=target, routed_queue={}, user_id=agent_user()
            )

        def consult_done(at: int) -> None:
            nonlocal agent
            agent.end(at, "transfer.consult")
            agent.acw, agent.acw_start_ms = "pending", at
            agent = consult["agent"]

        if conversation.transfer_type == "consult":
            changes += [
                (transfer_at - 2 * alert_ms, consult_start),
                (transfer_at - alert_ms, consult_answered),
                (transfer_at, consult_done),
            ]
        else:
            changes.append((transfer_at, transfer))
    if media == "message":
        for u in utterances:
            sender = customer if u.speaker == "customer" else agent

            def add_message(at: int, sender: _Leg = sender, u: Utterance = u) -> None:
                sender.message_ids.append((u.utterance_id, at))
                if sender is customer:
                    sender.message_ids.append((f"{u.utterance_id}-typing", at - 1000))

            changes.append((u.start_ms, add_message))
    agents_done: list[_Leg] = []
    for at, change in sorted(changes, key=lambda item: item[0]):
        change(at)
        snapshot(at)

    # --- the end: every participant ends, after-call work, wrap-up ----------------------------
    for p in legs:
        if p.end_ms is None:
            p.end(hangup_ms, "peer" if p is customer else "client")
            if p.purpose == "agent":
                p.acw, p.acw_start_ms = "pending", hangup_ms
    snapshot(hangup_ms)
    acw_done = hangup_ms + int(ACW_S * 1000)
    for p in legs:
        if p.purpose == "agent":
            agents_done.append(p)
            p.acw, p.acw_end_ms = "complete", acw_done
            p.wrapup = {
                "code": str(
                    uuid.uuid5(_WRAPUP_NAMESPACE, WRAPUP_CODES[len(agents_done) % len(WRAPUP_CODES)])
                ),
                "durationSeconds": int(ACW_S),
                "endTime": _iso(acw_done),
            }
    snapshot(acw_done)

    queue_topics = [queue_conversations_topic(q) for q, _ in queues]
    events = [
        Frame(at, topic, _envelope(topic, body, rng))
        for at, body in snapshots
        for topic in queue_topics
        if _on_queue(body, topic)
    ]
    if voiced:
        events += _transcription_frames(
            conversation_id=conversation_id,
            communication_id=customer.communication_id,
            session_start_ms=session_start_ms,
            hangup_ms=hangup_ms,
            utterances=utterances,
            language=conversation.language,
            organization_id=organization_id,
            rng=rng,
            late_utterance=late_utterance,
        )
    events.sort(key=lambda frame: frame.due_ms)
    return Scenario(
        conversation_id=conversation_id,
        communication_id=customer.communication_id,
        media=media,
        message_type=message_type,
        queues=tuple(queues),
        direction=direction,
        language=conversation.language,
        start_ms=start_ms,
        hangup_ms=hangup_ms,
        session_start_ms=session_start_ms,
        utterances=tuple(utterances),
        events=tuple(events),
        snapshots=tuple(snapshots),
        organization_id=organization_id,
        subject=subject,
    )


def _on_queue(body: dict[str, Any], topic: str) -> bool:
    """A queue's topic carries the conversation once a participant was routed to that queue."""
    return any(topic == queue_conversations_topic(p.get("queueId", "")) for p in body["participants"])


def _envelope(topic: str, body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {"topicName": topic, "version": "2", "eventBody": body, "metadata": {"CorrelationId": _uuid(rng)}}


def _transcription_frames(
    *,
    conversation_id: str,
    communication_id: str,
    session_start_ms: int,
    hangup_ms: int,
    utterances: list[Utterance],
    language: str,
    organization_id: str,
    rng: random.Random,
    late_utterance: bool,
) -> list[Frame]:
    topic = transcription_topic(conversation_id)

    def message(at_ms: int, results: list[dict[str, Any]], status: str) -> Frame:
        body: dict[str, Any] = {
            "eventTime": _iso(at_ms),
            "organizationId": organization_id,
            "conversationId": conversation_id,
            "communicationId": communication_id,
            "sessionStartTimeMs": session_start_ms,
            "transcriptionStartTimeMs": session_start_ms - 47,
        }
        if results:
            body["transcripts"] = results
        body["status"] = {"offsetMs": at_ms - session_start_ms, "status": status}
        return Frame(at_ms, topic, _envelope(topic, body, rng))

    frames = []
    keepalive = session_start_ms + 200
    while keepalive < hangup_ms:
        frames.append(message(keepalive, [], "SESSION_ONGOING"))
        keepalive += int(KEEPALIVE_S * 1000)
    groups: dict[int, list[dict[str, Any]]] = {}
    for u in utterances:
        end_offset = u.start_ms + u.duration_ms - session_start_ms
        groups.setdefault(end_offset // int(GROUP_WINDOW_S * 1000), []).append(
            _result(u, session_start_ms, language)
        )
    last_delivery = hangup_ms
    deliveries = []
    for index, results in sorted(groups.items()):
        due = session_start_ms + (index + 1) * int(GROUP_WINDOW_S * 1000) + int(LATENCY_S * 1000)
        deliveries.append((due, results))
        last_delivery = max(last_delivery, due)
    ended_at = max(last_delivery, hangup_ms + int(LATENCY_S * 1000)) + 500
    if late_utterance and deliveries:
        deliveries[-1] = (ended_at + 3000, deliveries[-1][1])
    frames += [message(due, results, "SESSION_ONGOING") for due, results in deliveries]
    # Real SESSION_ENDED messages carry little more than the ids and the status (reference §4.4).
    ended = {
        "conversationId": conversation_id,
        "communicationId": communication_id,
        "status": {"offsetMs": ended_at - session_start_ms, "status": "SESSION_ENDED"},
    }
    frames.append(Frame(ended_at, topic, _envelope(topic, ended, rng)))
    return frames


def _result(u: Utterance, session_start_ms: int, language: str) -> dict[str, Any]:
    offset = u.start_ms - session_start_ms
    raw_words = u.raw.split()
    step = u.duration_ms // max(len(raw_words), 1)
    words = [
        {
            "confidence": u.confidence,
            "startTimeMs": u.start_ms + i * step,
            "offsetMs": offset + i * step,
            "durationMs": step,
            "word": w,
        }
        for i, w in enumerate(raw_words)
    ]
    return {
        "utteranceId": u.utterance_id,
        "isFinal": True,
        "channel": "INTERNAL" if u.speaker == "agent" else "EXTERNAL",
        "alternatives": [
            {
                "confidence": u.confidence,
                "offsetMs": offset,
                "durationMs": u.duration_ms,
                "transcript": u.raw,
                "decoratedTranscript": u.text,
                "words": words,
            }
        ],
        "engineProvider": "GENESYS",
        "engineId": "r2d2",
        "dialect": language,
        "agentAssistEnabled": False,
        "voiceTranscriptionEnabled": True,
    }
