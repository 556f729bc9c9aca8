"""Reading a replay file: every frame once, whatever the chunk boundaries; bad lines contained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from indexer import replay
from indexer.deadletter import DeadLetterStore
from indexer.models import Envelope
from indexer.serialization import parse_envelope
from indexer.stats import Statistics
from tests.conftest import sample

TOPIC = "v2.routing.queues.q1.conversations"


def _frame(conversation_id: str) -> str:
    envelope = sample("queue-conversation")
    envelope["eventBody"]["id"] = conversation_id
    return json.dumps(envelope | {"topicName": TOPIC}, ensure_ascii=False)


@pytest.mark.parametrize("chunk_bytes", [7, 64, 1024 * 1024])
async def test_every_frame_once_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    """Frames split by any chunk boundary arrive whole; blank lines are skipped; a line that
    is not UTF-8 or not JSON is dead-lettered and the next one still arrives; a last line
    without a newline counts."""
    monkeypatch.setattr(replay, "CHUNK_BYTES", chunk_bytes)
    frames = [_frame(f"c{i}") for i in range(5)]
    body = (frames[0] + "\n\n" + frames[1] + "\r\n").encode() + b"\xff\xfe not utf-8\n"
    body += (frames[2] + "\n" + "é" * 3 + "\n" + frames[3] + "\n" + frames[4]).encode()
    path = tmp_path / "frames.ndjson"
    path.write_bytes(body)
    stats = Statistics()
    dead_letters = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    send, receive = trio.open_memory_channel[Envelope](100)
    read: list[int] = []
    await replay.read_replay(path, send, stats=stats, dead_letters=dead_letters, progress=read.append)
    ids = [envelope.event_body.id async for envelope in receive]  # type: ignore[union-attr]
    assert ids == ["c0", "c1", "c2", "c3", "c4"]
    assert (
        stats.messages["malformed"] == 2
        and [d["kind"] for d in dead_letters.read()] == ["malformed_message"] * 2
    )
    assert sum(read) == len(body) + 1  # every byte, and a newline counted for the last line


def _eventbridge(frame: dict[str, object], detail_type: str) -> str:
    """``frame`` as Genesys' EventBridge integration delivers it (reference §7, the shape of
    the official blueprint's ``aws-event-bridge-conversation-end-event.json``)."""
    return json.dumps(
        {
            "version": "0",
            "id": "58fb5dac-f077-4eec-a25f-c638dbdd4368",
            "detail-type": detail_type,
            "source": "aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/transcripts",
            "account": "123456789012",
            "time": "2022-06-14T16:12:11.000Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {**frame, "version": "2", "timestamp": "2022-04-06T09:30:45.013Z"},
        }
    )


async def test_an_eventbridge_archive_replays_like_captured_frames(tmp_path: Path) -> None:
    """EventBridge events (as archived or exported, one per line) are read as the
    notifications their ``detail`` holds; analytics detail events a rule also carries
    (``customer.end``) are counted, not dead-lettered."""
    customer_end = {
        "topicName": "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end",
        "eventBody": {"eventTime": 1649237504949, "conversationId": "2f7bf00a-0fc2-4d6a-9b56-92238191433e"},
        "metadata": {"CorrelationId": "7272d362-23b2-4c14-9d40-dc7b7683153a"},
    }
    lines = [
        _eventbridge(sample("queue-conversation"), "v2.routing.queues.{id}.conversations"),
        _eventbridge(sample("transcription"), "v2.conversations.{id}.transcription"),
        _eventbridge(customer_end, "v2.detail.events.conversation.{id}.customer.end"),
    ]
    path = tmp_path / "archive.ndjson"
    path.write_text("\n".join(lines) + "\n")
    stats = Statistics()
    dead_letters = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    send, receive = trio.open_memory_channel[Envelope](100)
    await replay.read_replay(path, send, stats=stats, dead_letters=dead_letters)
    envelopes = [envelope async for envelope in receive]
    assert [e.topic_name for e in envelopes] == [
        sample("queue-conversation")["topicName"],
        sample("transcription")["topicName"],
    ]
    assert envelopes[1].event_body == parse_envelope(json.dumps(sample("transcription"))).event_body
    assert dict(stats.messages) == {"conversation": 1, "transcription": 1, "detail": 1}
    assert dead_letters.read() == []
