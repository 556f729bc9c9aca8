"""One corpus conversation turned into what Genesys Cloud would emit, on a simulated clock.

A voice call on a queue (times in simulated seconds from the call's start):

- 0: the customer is connected and waits in the queue (``acd`` participant);
- ``QUEUE_WAIT_S``: an agent answers, the ``acd`` leg ends, a transcription session starts
  with a status-only ``SESSION_ONGOING`` message (and another every 5 minutes, reference §4.2);
- turns follow at a speaking rate; finished utterances are grouped into transcription
  messages every ``GROUP_WINDOW_S`` and delivered ``LATENCY_S`` later (reference §4.1-4.2);
- after the last turn the customer hangs up: every participant ends, the agent enters
  after-call work; ``SESSION_ENDED`` follows the last transcript; after-call work
  completes ``ACW_S`` later.

Raw ASR text (``transcript``, ``words``) is lower case without sentence punctuation;
``decoratedTranscript`` is the corpus text as written.
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from indexer.emulator.corpus import CorpusConversation
from indexer.models import (
    AfterCallWork,
    Call,
    ConversationEvent,
    Envelope,
    Participant,
    Queue,
    RoutingData,
    TranscriptAlternative,
    TranscriptionMessage,
    TranscriptionStatus,
    TranscriptResult,
    Word,
)
from indexer.serialization import format_time, unstructure
from indexer.topics import queue_conversations_topic, transcription_topic

__all__ = ["Scenario", "asr_text", "build_scenario", "queue_id_for"]

QUEUE_WAIT_S: Final = 8.0
WORDS_PER_S: Final = 2.6
GROUP_WINDOW_S: Final = 5.0
LATENCY_S: Final = 2.0
KEEPALIVE_S: Final = 300.0
ACW_S: Final = 20.0
AGENTS: Final = 20

_QUOTES = "\"'\u201c\u201d\u2018\u2019"
_EDGE_PUNCTUATION = re.compile(rf"^[{_QUOTES}(\[]+|[{_QUOTES})\].,!?;:\u2026]+$")
_QUEUE_NAMESPACE = uuid.UUID("5f0c2a8e-8d3b-4f5e-9d0a-3c1b2a4d5e6f")


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


@attrs.frozen
class Utterance:
    """An utterance as played: absolute times in epoch ms."""

    utterance_id: str
    speaker: str
    text: str
    raw: str
    start_ms: int
    duration_ms: int
    confidence: float


@attrs.frozen
class Scenario:
    """Everything the emulator serves about one conversation.

    :ivar events: ``(epoch ms due, envelope)`` in due order.
    :ivar snapshots: ``(epoch ms, conversation snapshot)`` for REST reads.
    """

    conversation_id: str
    communication_id: str
    queue_id: str
    queue_name: str
    direction: str
    language: str
    start_ms: int
    hangup_ms: int
    session_start_ms: int
    utterances: tuple[Utterance, ...]
    events: tuple[tuple[int, Envelope], ...]
    snapshots: tuple[tuple[int, ConversationEvent], ...]
    organization_id: str

    def snapshot_at(self, now_ms: int) -> ConversationEvent | None:
        """The conversation as it stands at ``now_ms``, or ``None`` before it starts."""
        current = None
        for at, snapshot in self.snapshots:
            if at <= now_ms:
                current = snapshot
        return current

    # --- REST views ---------------------------------------------------------------------

    def conversation_json(self, now_ms: int) -> dict[str, Any] | None:
        """``GET /api/v2/conversations/{id}`` (``Conversation`` model, reference §6.3)."""
        snapshot = self.snapshot_at(now_ms)
        if snapshot is None:
            return None
        body: dict[str, Any] = unstructure(snapshot)
        body["startTime"] = _iso(self.start_ms)
        if now_ms >= self.hangup_ms:
            body["endTime"] = _iso(self.hangup_ms)
        body["state"] = "disconnected" if now_ms >= self.hangup_ms else "connected"
        return body

    def analytics_json(self, now_ms: int) -> dict[str, Any] | None:
        """``GET /api/v2/analytics/conversations/{id}/details`` (reference §6.4)."""
        snapshot = self.snapshot_at(now_ms)
        if snapshot is None:
            return None
        participants = []
        for p in snapshot.participants:
            start = p.connected_time
            end = p.end_time
            participants.append(
                {
                    "participantId": p.id,
                    "purpose": p.purpose,
                    **({"userId": p.user_id} if p.user_id else {}),
                    "sessions": [
                        {
                            "sessionId": c.id,
                            "mediaType": "voice",
                            "direction": c.direction or self.direction,
                            "segments": [
                                {
                                    "segmentType": "interact" if p.purpose != "acd" else "alert",
                                    "segmentStart": format_time(start) if start else None,
                                    **({"segmentEnd": format_time(end)} if end else {}),
                                    "queueId": self.queue_id,
                                }
                            ],
                        }
                        for c in p.calls
                    ],
                }
            )
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


def _iso(ms: int) -> str:
    return format_time(datetime.fromtimestamp(ms / 1000, UTC))


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


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
        (a fault the worker must absorb).
    """
    conversation_id, customer_call, agent_call, acd_call = (_uuid(rng) for _ in range(4))
    customer_pid, acd_pid, agent_pid = (_uuid(rng) for _ in range(3))
    agent_user = str(uuid.UUID(int=rng.randrange(AGENTS) + 1, version=4))
    queue_id = queue_id_for(conversation.queue)
    queue = Queue(id=queue_id, name=conversation.queue)
    direction = conversation.direction
    session_start_ms = start_ms + int(QUEUE_WAIT_S * 1000)

    utterances = []
    cursor = session_start_ms + 1000
    for turn in conversation.turns:
        raw = asr_text(turn.text)
        if not raw:
            continue
        duration = int(max(0.6, len(raw.split()) / WORDS_PER_S) * 1000)
        utterances.append(
            Utterance(
                utterance_id=_uuid(rng),
                speaker=turn.speaker,
                text=turn.text,
                raw=raw,
                start_ms=cursor,
                duration_ms=duration,
                confidence=round(rng.uniform(0.80, 0.99), 3),
            )
        )
        cursor += duration + int(rng.uniform(0.4, 1.2) * 1000)
    hangup_ms = cursor + 1000

    def participants(now_ms: int) -> tuple[Participant, ...]:
        agent_on = now_ms >= session_start_ms
        ended = now_ms >= hangup_ms
        acw_done = now_ms >= hangup_ms + int(ACW_S * 1000)
        customer = Participant(
            id=customer_pid,
            purpose="customer",
            connected_time=_dt(start_ms),
            end_time=_dt(hangup_ms) if ended else None,
            calls=(
                Call(
                    id=customer_call,
                    state="disconnected" if ended else "connected",
                    direction=direction,
                    connected_time=_dt(start_ms),
                    disconnected_time=_dt(hangup_ms) if ended else None,
                    disconnect_type="peer" if ended else None,
                ),
            ),
        )
        acd = Participant(
            id=acd_pid,
            purpose="acd",
            queue_id=queue_id,
            conversation_routing_data=RoutingData(queue=queue),
            connected_time=_dt(start_ms),
            end_time=_dt(session_start_ms) if agent_on else None,
            calls=(
                Call(
                    id=acd_call,
                    state="disconnected" if agent_on else "connected",
                    direction=direction,
                    connected_time=_dt(start_ms),
                    disconnected_time=_dt(session_start_ms) if agent_on else None,
                    disconnect_type="transfer" if agent_on else None,
                ),
            ),
        )
        if not agent_on:
            return (customer, acd)
        agent = Participant(
            id=agent_pid,
            purpose="agent",
            user_id=agent_user,
            queue_id=queue_id,
            conversation_routing_data=RoutingData(queue=queue),
            connected_time=_dt(session_start_ms),
            end_time=_dt(hangup_ms) if ended else None,
            wrapup_required=True,
            start_acw_time=_dt(hangup_ms) if ended else None,
            end_acw_time=_dt(hangup_ms + int(ACW_S * 1000)) if acw_done else None,
            calls=(
                Call(
                    id=agent_call,
                    state="disconnected" if ended else "connected",
                    direction=direction,
                    connected_time=_dt(session_start_ms),
                    disconnected_time=_dt(hangup_ms) if ended else None,
                    disconnect_type="client" if ended else None,
                    after_call_work_required=True,
                    after_call_work=AfterCallWork(
                        state="complete" if acw_done else "pending",
                        start_time=_dt(hangup_ms),
                        end_time=_dt(hangup_ms + int(ACW_S * 1000)) if acw_done else None,
                    )
                    if ended
                    else None,
                ),
            ),
        )
        return (customer, acd, agent)

    snapshot_times = [start_ms, session_start_ms, hangup_ms, hangup_ms + int(ACW_S * 1000)]
    snapshots = tuple(
        (t, ConversationEvent(id=conversation_id, participants=participants(t))) for t in snapshot_times
    )
    queue_topic = queue_conversations_topic(queue_id)
    transcription = transcription_topic(conversation_id)
    events: list[tuple[int, Envelope]] = [
        (t, Envelope(topic_name=queue_topic, event_body=snapshot, version="2", correlation_id=_uuid(rng)))
        for t, snapshot in snapshots
    ]

    def message(at_ms: int, results: tuple[TranscriptResult, ...], status: str) -> tuple[int, Envelope]:
        body = TranscriptionMessage(
            event_time=_dt(at_ms),
            organization_id=organization_id,
            conversation_id=conversation_id,
            communication_id=customer_call,
            session_start_time_ms=session_start_ms,
            transcription_start_time_ms=session_start_ms - 47,
            transcripts=results,
            status=TranscriptionStatus(status=status, offset_ms=at_ms - session_start_ms),
        )
        return at_ms, Envelope(
            topic_name=transcription, event_body=body, version="2", correlation_id=_uuid(rng)
        )

    keepalive = session_start_ms + 200
    while keepalive < hangup_ms:
        events.append(message(keepalive, (), "SESSION_ONGOING"))
        keepalive += int(KEEPALIVE_S * 1000)

    groups: dict[int, list[TranscriptResult]] = {}
    for u in utterances:
        end_offset = u.start_ms + u.duration_ms - session_start_ms
        groups.setdefault(end_offset // int(GROUP_WINDOW_S * 1000), []).append(
            _result(u, session_start_ms, conversation)
        )
    last_delivery = hangup_ms
    deliveries = []
    for index, results in sorted(groups.items()):
        due = session_start_ms + (index + 1) * int(GROUP_WINDOW_S * 1000) + int(LATENCY_S * 1000)
        deliveries.append((due, tuple(results)))
        last_delivery = max(last_delivery, due)
    ended_at = max(last_delivery, hangup_ms + int(LATENCY_S * 1000)) + 500
    if late_utterance and deliveries:
        deliveries[-1] = (ended_at + 3000, deliveries[-1][1])
    events.extend(message(due, results, "SESSION_ONGOING") for due, results in deliveries)
    events.append(message(ended_at, (), "SESSION_ENDED"))
    events.sort(key=lambda item: item[0])
    return Scenario(
        conversation_id=conversation_id,
        communication_id=customer_call,
        queue_id=queue_id,
        queue_name=conversation.queue,
        direction=direction,
        language=conversation.language,
        start_ms=start_ms,
        hangup_ms=hangup_ms,
        session_start_ms=session_start_ms,
        utterances=tuple(utterances),
        events=tuple(events),
        snapshots=snapshots,
        organization_id=organization_id,
    )


def _result(u: Utterance, session_start_ms: int, conversation: CorpusConversation) -> TranscriptResult:
    offset = u.start_ms - session_start_ms
    raw_words = u.raw.split()
    step = u.duration_ms // max(len(raw_words), 1)
    words = tuple(
        Word(
            word=w,
            offset_ms=offset + i * step,
            duration_ms=step,
            confidence=u.confidence,
            start_time_ms=u.start_ms + i * step,
        )
        for i, w in enumerate(raw_words)
    )
    return TranscriptResult(
        utterance_id=u.utterance_id,
        is_final=True,
        channel="INTERNAL" if u.speaker == "agent" else "EXTERNAL",
        alternatives=(
            TranscriptAlternative(
                confidence=u.confidence,
                offset_ms=offset,
                duration_ms=u.duration_ms,
                transcript=u.raw,
                decorated_transcript=u.text,
                words=words,
            ),
        ),
        engine_provider="GENESYS",
        engine_id="r2d2",
        dialect=conversation.language,
        agent_assist_enabled=False,
        voice_transcription_enabled=True,
    )
