"""Conversation state: deduplication, ordering, end rules and the document it becomes."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from indexer.document import DocWord
from indexer.models import (
    MAX_EPOCH_MS,
    MAX_OFFSET_MS,
    ConversationEvent,
    TranscriptAlternative,
    TranscriptionMessage,
    TranscriptResult,
    Word,
)
from indexer.tracker import ConversationState, KeptUtterance, speaker_of
from tests.factories import QUEUE, at, conversation, transcription, utterance


def _state() -> ConversationState:
    return ConversationState(conversation_id="c", first_event_at=0.0, last_event_at=0.0)


def _apply(state: ConversationState, *envelopes: object) -> None:
    for envelope in envelopes:
        body = envelope.event_body  # type: ignore[attr-defined]
        if isinstance(body, TranscriptionMessage):
            state.apply_transcription(body, 1.0)
        else:
            assert isinstance(body, ConversationEvent)
            state.apply_conversation(body, 1.0)


def test_utterances_are_deduplicated_and_ordered_by_offset() -> None:
    """Duplicates by utteranceId count once; out-of-order arrival is sorted by offsetMs."""
    state = _state()
    _apply(
        state,
        transcription(utterance("u3", "third", 9000)),
        transcription(utterance("u1", "first", 1000), utterance("u2", "second", 5000, channel="INTERNAL")),
        transcription(utterance("u1", "first", 1000)),
    )
    assert state.duplicates == 1
    document = state.to_document("ended", {})
    assert [u.text for u in document.utterances] == ["first", "second", "third"]
    assert [u.speaker for u in document.utterances] == ["customer", "agent", "customer"]
    assert document.text == "first\nsecond\nthird"


def test_final_result_replaces_interim_but_not_the_reverse() -> None:
    """An isFinal=true utterance replaces an interim one; a later interim never replaces a final."""
    state = _state()
    _apply(state, transcription(utterance("u1", "interim guess", 1000, final=False)))
    _apply(state, transcription(utterance("u1", "final words", 1000)))
    _apply(state, transcription(utterance("u1", "late interim", 1000, final=False)))
    assert [u.text for u in state.to_document("ended", {}).utterances] == ["final words"]


def test_end_needs_participants_and_every_session() -> None:
    """Ended = all participants ended AND every session seen reached SESSION_ENDED."""
    state = _state()
    _apply(state, conversation(ended=False), transcription(utterance("u1", "hello", 1000)))
    assert not state.ended()
    _apply(state, conversation(ended=True))
    assert state.participants_ended() and not state.sessions_ended()
    _apply(state, transcription(status="SESSION_ENDED", communication="second-leg"))
    assert not state.sessions_ended(), "the first session has not ended yet"
    _apply(state, transcription(status="SESSION_ENDED"))
    assert state.ended()


def test_a_participant_once_ended_stays_ended() -> None:
    """An older snapshot arriving late does not re-open an ended participant (order not guaranteed)."""
    state = _state()
    _apply(state, conversation(ended=True), conversation(ended=False))
    assert state.participants_ended()


def test_document_fields() -> None:
    """Queues, direction, language, times and participants come from the events."""
    state = _state()
    _apply(
        state,
        conversation(ended=False, direction="outbound"),
        transcription(second=0),  # the status-only message that opens the session
        transcription(utterance("u1", "hello there", 2000)),
        conversation(ended=True, direction="outbound"),
        transcription(status="SESSION_ENDED", second=61),
    )
    document = state.to_document("ended", {QUEUE: "Billing"})
    assert document.queues[0].id == QUEUE and document.queues[0].name == "Billing"
    assert document.direction == "outbound"
    assert document.language == "en-US"
    assert document.started_at == at(0)
    assert document.ended_at == at(60)
    assert document.duration_ms == 60_000
    assert [p.purpose for p in document.participants] == ["customer", "agent"]
    assert document.complete and document.completion_reason == "ended"
    assert document.version == int(at(61).timestamp() * 1000)
    assert document.utterances[0].spoken_at == at(2)
    assert [w.word for w in document.utterances[0].words] == ["hello", "there"]


@pytest.mark.parametrize("gap", [False, True], ids=["joined-late", "gap"])
def test_an_ended_call_the_stream_did_not_have_whole_is_not_complete(gap: bool) -> None:
    """Ended, but the stream may lack its start (no opening message, or a gap overlapped
    it): ``complete`` is false (with recovery on, the post-call transcript completes it)."""
    state = _state()
    opening = [] if not gap else [transcription(second=0)]
    _apply(
        state,
        conversation(ended=False),
        *opening,
        transcription(utterance("u1", "hello there", 2000)),
        conversation(ended=True),
        transcription(status="SESSION_ENDED", second=61),
    )
    state.gap_affected = gap
    assert state.ended() and state.has_holes()
    document = state.to_document("ended", {})
    assert document.completion_reason == "ended" and document.complete is False


def test_speaker_mapping() -> None:
    """INTERNAL is the agent, EXTERNAL the customer (reference §4.3)."""
    assert [speaker_of(c) for c in ("INTERNAL", "EXTERNAL", "BOTH", "UNKNOWN")] == [
        "agent",
        "customer",
        "unknown",
        "unknown",
    ]


def test_holes_when_a_session_was_joined_late() -> None:
    """Without the session's opening status-only message the live transcript may lack utterances."""
    joined_in_time = _state()
    _apply(
        joined_in_time,
        conversation(ended=True),
        transcription(second=0),  # the opening keep-alive (reference §4.2)
        transcription(utterance("u1", "hello", 1000)),
        transcription(status="SESSION_ENDED"),
    )
    assert not joined_in_time.has_holes()
    joined_late = _state()
    _apply(
        joined_late,
        conversation(ended=True),
        transcription(utterance("u7", "the seventh thing said", 60_000), second=70),
        transcription(status="SESSION_ENDED"),
    )
    assert joined_late.has_holes()
    no_session = _state()
    _apply(no_session, conversation(ended=True))
    assert no_session.has_holes()


_MS = st.one_of(st.none(), st.integers(-MAX_OFFSET_MS, MAX_OFFSET_MS), st.integers(-(2**31) - 2, 2**31 + 1))
_WORDS = st.lists(
    st.builds(
        Word,
        word=st.text(max_size=6),
        offset_ms=_MS,
        duration_ms=st.one_of(st.none(), st.integers(0, MAX_OFFSET_MS)),
        confidence=st.one_of(st.none(), st.floats(0, 1)),
        start_time_ms=st.one_of(st.none(), st.integers(0, MAX_EPOCH_MS)),
    ),
    max_size=6,
)


@given(_WORDS)
@example([Word("a", offset_ms=-(2**31), duration_ms=2**31 - 1)])  # the bounds of a 32-bit column
@example([Word("a", offset_ms=-(2**31) + 1), Word("b", offset_ms=2**31, confidence=0.5)])
def test_the_words_kept_packed_are_the_words_received(words: list[Word]) -> None:
    """An open conversation keeps its words packed in columns (memory); the document
    gets each word back as received: text, offset, duration and confidence, absent ones too."""
    result = TranscriptResult(
        utterance_id="u1",
        alternatives=(TranscriptAlternative(transcript="x", offset_ms=0, words=tuple(words)),),
    )
    kept = KeptUtterance.of(result)
    assert kept.doc_words() == tuple(
        DocWord(word=w.word, offset_ms=w.offset_ms, duration_ms=w.duration_ms, confidence=w.confidence)
        for w in words
    )
