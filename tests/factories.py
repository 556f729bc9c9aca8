"""Builders of wire models for tests (real shapes, few fields)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import attrs
import trio

from indexer.completion import detect_completion
from indexer.config import CompletionSettings
from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.journal import Journal
from indexer.models import (
    Call,
    ConversationEvent,
    Envelope,
    Participant,
    TranscriptAlternative,
    TranscriptionMessage,
    TranscriptionStatus,
    TranscriptResult,
    Word,
)
from indexer.pipeline import Pipeline
from indexer.recovery import Gap
from indexer.stats import Statistics
from indexer.topics import queue_conversations_topic, transcription_topic
from indexer.tracker import ConversationState

CONVERSATION = "9a3c1d52-3a1e-4c3b-9f0e-6d2b7a1c4e11"
COMMUNICATION = "7dd98c4f-2b1a-4c55-8e0a-3f9b6c2d1e77"
QUEUE = "3f1b2c4d-0e5f-4a6b-8c7d-9e0f1a2b3c4d"
SESSION_START_MS = 1742421594383
#: ``autojump_threshold`` (real s) for tests whose detector reads the journal in a thread:
#: the mock clock must not jump to a deadline while the thread runs (on a loaded CI machine
#: a read of a few frames once took over 0.1 s).
THREAD_AUTOJUMP_S = 1.0


def at(second: int) -> datetime:
    """A time ``second`` s after the session start."""
    return datetime.fromtimestamp(SESSION_START_MS / 1000 + second, UTC)


def utterance(
    uid: str, text: str, offset_ms: int, *, channel: str = "EXTERNAL", final: bool = True
) -> TranscriptResult:
    """One utterance with words spelled from ``text``."""
    words = tuple(
        Word(word=w, offset_ms=offset_ms + 100 * i, duration_ms=90) for i, w in enumerate(text.split())
    )
    return TranscriptResult(
        utterance_id=uid,
        channel=channel,
        is_final=final,
        dialect="en-US",
        alternatives=(
            TranscriptAlternative(
                transcript=text.lower(),
                decorated_transcript=text,
                offset_ms=offset_ms,
                duration_ms=900,
                confidence=0.9,
                words=words,
            ),
        ),
    )


def transcription(
    *results: TranscriptResult,
    status: str = "SESSION_ONGOING",
    conversation: str = CONVERSATION,
    communication: str = COMMUNICATION,
    second: int = 10,
) -> Envelope:
    """A transcription envelope."""
    body = TranscriptionMessage(
        conversation_id=conversation,
        communication_id=communication,
        event_time=at(second),
        session_start_time_ms=SESSION_START_MS,
        transcripts=results,
        status=TranscriptionStatus(status=status, offset_ms=second * 1000),
    )
    return Envelope(topic_name=transcription_topic(conversation), event_body=body, version="2")


def conversation(*, ended: bool, conversation_id: str = CONVERSATION, direction: str = "inbound") -> Envelope:
    """A queue conversation snapshot with a customer and an agent, connected or ended."""
    state = "disconnected" if ended else "connected"
    end = at(60) if ended else None
    participants = (
        Participant(
            id="p-customer",
            purpose="customer",
            connected_time=at(0),
            end_time=end,
            calls=(Call(id=COMMUNICATION, state=state, direction=direction),),
        ),
        Participant(
            id="p-agent",
            purpose="agent",
            user_id="user-1",
            queue_id=QUEUE,
            connected_time=at(1),
            end_time=end,
            calls=(Call(id="c-agent", state=state, direction=direction),),
        ),
    )
    return Envelope(
        topic_name=queue_conversations_topic(QUEUE),
        event_body=ConversationEvent(id=conversation_id, participants=participants),
        version="2",
    )


def document(conversation_id: str, version: int = 1) -> TranscriptDocument:
    """A finished conversation's document: one utterance, ``version``."""
    state = ConversationState(conversation_id=conversation_id, first_event_at=0, last_event_at=0)
    state.apply_transcription(transcription(utterance("u1", "hello", 1000)).event_body, 0)  # type: ignore[arg-type]
    state.apply_conversation(conversation(ended=True).event_body, 0)  # type: ignore[arg-type]
    return attrs.evolve(state.to_document("ended", {}), version=version)


def in_process(pipeline: Pipeline) -> Callable[[TranscriptDocument], Awaitable[TranscriptDocument]]:
    """``pipeline.finalize`` as ``finalize_transcripts`` calls it, here in this process
    (the worker runs it in worker processes, :mod:`indexer.isolation`)."""

    async def finalize(document: TranscriptDocument) -> TranscriptDocument:
        return pipeline.finalize(document)

    return finalize


async def run_detector(
    envelopes: Sequence[Envelope],
    state_dir: Path,
    *,
    journal: Journal | None = None,
    queue_names: dict[str, str] | None = None,
) -> tuple[list[TranscriptDocument], Statistics, DeadLetterStore]:
    """The documents the detector makes of ``envelopes`` (flushed at the end of the stream),
    its counters and its dead-letter store (at most 100 documents)."""
    stats = Statistics()
    dead = DeadLetterStore(state_dir / "dead.ndjson", stats)
    send, receive = trio.open_memory_channel[Envelope | Gap](len(envelopes) + 1)
    docs_send, docs = trio.open_memory_channel[TranscriptDocument](100)
    for envelope in envelopes:
        send.send_nowait(envelope)
    send.close()
    await detect_completion(
        receive,
        docs_send,
        settings=CompletionSettings(grace_period_s=1.0),
        dead_letters=dead,
        stats=stats,
        queue_names=queue_names,
        journal=journal,
    )
    return [d async for d in docs], stats, dead
