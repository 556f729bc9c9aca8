"""Reading a replay file: every frame once, whatever the chunk boundaries; bad lines contained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from indexer import replay
from indexer.deadletter import DeadLetterStore
from indexer.models import Envelope
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
