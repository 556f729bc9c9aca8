"""Wire models: real-shaped payloads parse; malformed ones raise one readable error."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.errors import MalformedMessage
from indexer.models import ChannelMetadata, ConversationEvent, SystemMessage, TranscriptionMessage, Word
from indexer.serialization import dump_envelope, parse_envelope, structure
from tests.conftest import sample


def test_transcription_message_parses_every_field() -> None:
    """The transcription sample (reference §4.4) parses into typed fields, 64-bit ms kept."""
    envelope = parse_envelope(json.dumps(sample("transcription")))
    body = envelope.event_body
    assert isinstance(body, TranscriptionMessage)
    assert envelope.correlation_id == "4e8a6c1e-0b9d-4a2f-8c7e-1d2f3a4b5c6d"
    assert envelope.version == "2"
    assert body.session_start_time_ms == 1742421594383
    assert body.event_time == datetime(2025, 3, 19, 22, 4, 48, 128000, tzinfo=UTC)
    (result,) = body.transcripts
    assert result.utterance_id == "5b778cb0-6f0e-4a7d-9c3b-2e1d0a9f8b76"
    assert result.channel == "EXTERNAL"
    assert result.dialect == "en-US"
    alt = result.alternatives[0]
    assert (alt.offset_ms, alt.duration_ms, alt.confidence) == (63459, 3722, 0.925)
    assert alt.decorated_transcript == "Hi, I am calling about my invoice."
    assert alt.words[0].start_time_ms == 1742421657842
    assert body.status is not None and body.status.status == "SESSION_ONGOING"


@pytest.mark.parametrize("name", ["transcription-keepalive", "transcription-ended"])
def test_status_only_messages_have_no_transcripts(name: str) -> None:
    """Keep-alives and SESSION_ENDED carry no ``transcripts`` and still parse (§4.2, §8 item 11)."""
    body = parse_envelope(json.dumps(sample(name))).event_body
    assert isinstance(body, TranscriptionMessage)
    assert body.transcripts == ()
    assert body.status is not None


def test_queue_conversation_event_ignores_unknown_fields_and_pii() -> None:
    """Unknown fields are tolerated; participant names and addresses are not modelled."""
    body = parse_envelope(json.dumps(sample("queue-conversation"))).event_body
    assert isinstance(body, ConversationEvent)
    purposes = [p.purpose for p in body.participants]
    assert purposes == ["customer", "acd", "agent"]
    agent = body.participants[2]
    assert agent.user_id == "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
    assert agent.calls[0].after_call_work is not None
    assert agent.calls[0].after_call_work.state == "pending"
    acd = body.participants[1]
    assert acd.conversation_routing_data is not None and acd.conversation_routing_data.queue is not None
    assert acd.conversation_routing_data.queue.name == "Billing"
    assert "Jane" not in repr(body) and "4155550123" not in repr(body)


@pytest.mark.parametrize(
    ("name", "cls", "message"),
    [
        ("heartbeat", ChannelMetadata, "WebSocket Heartbeat"),
        ("pong", ChannelMetadata, "pong"),
        ("socket-closing", SystemMessage, "The socket will close for maintenance"),
    ],
)
def test_channel_and_system_messages(name: str, cls: type, message: str) -> None:
    """Heartbeats, pongs and socket_closing parse into their models (§3.6, §3.7)."""
    body = parse_envelope(json.dumps(sample(name))).event_body
    assert isinstance(body, cls)
    assert body.message == message


@pytest.mark.parametrize(
    "name", ["transcription", "transcription-ended", "queue-conversation", "heartbeat", "socket-closing"]
)
def test_dump_envelope_round_trips(name: str) -> None:
    """``dump_envelope`` writes what ``parse_envelope`` reads back unchanged."""
    envelope = parse_envelope(json.dumps(sample(name)))
    assert parse_envelope(dump_envelope(envelope)) == envelope


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"eventBody": {}}', "missing topicName"),
        ('{"topicName": "v2.something.invented", "eventBody": {}}', "unknown topic"),
    ],
)
def test_malformed_frames_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    """Frames that are not notifications raise MalformedMessage with a one-line reason."""
    with pytest.raises(MalformedMessage, match=reason):
        parse_envelope(raw)


def test_wrong_field_types_name_the_field_not_the_value() -> None:
    """A body that does not fit its model names the field, never quotes the value."""
    data = sample("transcription")
    data["eventBody"]["transcripts"][0]["alternatives"][0]["offsetMs"] = "secret-value"
    del data["eventBody"]["communicationId"]  # required (the models' docstring lists why)
    with pytest.raises(MalformedMessage) as caught:
        parse_envelope(json.dumps(data))
    assert "communication_id" in caught.value.reason
    assert "offset_ms" in caught.value.reason
    assert "secret-value" not in caught.value.reason
    assert "\n" not in caught.value.reason


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.just([]),
    st.just({}),
)
_INTEGERS = st.one_of(st.integers(-(10**6), 10**6), st.integers(-(2**63), 2**63))


def _mostly(plain: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's plain JSON type three times in four, anything else otherwise."""
    return st.one_of(plain, plain, plain, _JSON_SCALARS)


_WORD = st.fixed_dictionaries(
    {},
    optional={
        "word": _mostly(st.text(max_size=5)),
        "offsetMs": _mostly(_INTEGERS),
        "durationMs": _mostly(_INTEGERS),
        "confidence": _mostly(st.one_of(st.floats(0, 1), st.integers(0, 1))),
        "startTimeMs": _mostly(_INTEGERS),
        "extra": _JSON_SCALARS,
    },
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_WORD, min_size=1, max_size=2),
    st.one_of(st.none(), _JSON_SCALARS.filter(lambda v: v is not None)),
)
def test_words_read_the_fast_way_are_the_words_read_in_detail(words: list[Any], other: Any) -> None:
    """Words (most of a frame) are built directly when their fields have plain JSON types;
    whatever the input, that gives the same words, or the same refusal, as structuring each
    word in detail (the way that names the field at fault)."""

    def outcome(read: Callable[[], tuple[Word, ...]]) -> tuple[Word, ...] | str:
        try:
            return read()
        except MalformedMessage:
            return "refused"

    items = words if other is None else [*words, other]  # a word that is no JSON object
    fast = outcome(lambda: structure(items, tuple[Word, ...]))
    detailed = outcome(lambda: tuple(structure(item, Word) for item in items))
    assert repr(fast) == repr(detailed)  # repr: a NaN confidence never equals itself
