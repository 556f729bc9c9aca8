"""``transcript-indexer dead-letters``: list, show and send back what could not be indexed."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import trio
from opensearchpy import OpenSearch

from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.serialization import unstructure
from indexer.stats import Statistics
from indexer.tracker import ConversationState
from tests.factories import conversation, transcription, utterance
from tests.test_cli import _run

CARD = "4111 1111 1111 1111"
SECRET_FRAME = '{"topicName": 7, "note": "call me at 415 555 0123"}'


def _document(conversation_id: str, text: str) -> TranscriptDocument:
    state = ConversationState(conversation_id=conversation_id, first_event_at=0, last_event_at=0)
    state.apply_transcription(transcription(utterance("u1", text, 1000)).event_body, 0)  # type: ignore[arg-type]
    state.apply_conversation(conversation(ended=True).event_body, 0)  # type: ignore[arg-type]
    return attrs.evolve(state.to_document("ended", {}), conversation_id=conversation_id)


def _fill(state_dir: Path) -> list[str]:
    """Two quarantined transcripts holding a card number and a malformed frame; their ids."""

    async def fill() -> None:
        store = DeadLetterStore(state_dir / "dead-letters.ndjson", Statistics())
        for conversation_id in ("c-1", "c-2"):
            document = _document(conversation_id, f"my card is {CARD} thanks")
            await store.add(
                "quarantined",
                "PII left after redaction: t.card",
                unstructure(document),
                conversation_id=conversation_id,
            )
        await store.add("malformed_message", "missing topicName", SECRET_FRAME)

    state_dir.mkdir(mode=0o700)
    trio.run(fill)
    return [e.id for e in DeadLetterStore(state_dir / "dead-letters.ndjson", Statistics()).entries()]


def test_list_counts_by_kind_and_never_prints_payloads(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids = _fill(state)
    env = {"INDEXER_STATE_DIR": str(state)}
    listed = _run("dead-letters", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"3 dead letters in {state}" in listed.stdout
    assert any(line.split()[:2] == ["malformed_message", "1"] for line in listed.stdout.splitlines())
    assert any(line.split()[:2] == ["quarantined", "2"] for line in listed.stdout.splitlines())
    assert all(letter_id in listed.stdout for letter_id in ids)
    assert CARD not in listed.stdout and "415 555" not in listed.stdout

    as_json = _run("dead-letters", "list", "--json", "--kind", "malformed_message", env=env)
    (line,) = as_json.stdout.splitlines()
    entry = json.loads(line)
    assert entry["id"] == ids[2] and entry["kind"] == "malformed_message" and "payload" not in entry

    assert _run("dead-letters", "list", "--since", "2100-01-01", env=env).stdout.startswith("no dead letters")
    bad = _run("dead-letters", "list", "--since", "next week", env=env)
    assert bad.returncode == 2
    assert (
        bad.stderr.strip() == "transcript-indexer: error: --since 'next week' is not an ISO-8601 date or time"
    )
    empty = _run("dead-letters", "list", env={"INDEXER_STATE_DIR": str(tmp_path / "none")})
    assert empty.returncode == 0 and empty.stdout.startswith("no dead letters")


def test_show_gives_the_payload_only_when_asked(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids = _fill(state)
    env = {"INDEXER_STATE_DIR": str(state)}
    shown = _run("dead-letters", "show", ids[2][:6], env=env)
    assert shown.returncode == 0, shown.stderr
    assert "kind: malformed_message" in shown.stdout and "reason: missing topicName" in shown.stdout
    assert "415 555" not in shown.stdout
    with_payload = _run("dead-letters", "show", ids[2], "--payload", "--json", env=env)
    assert json.loads(with_payload.stdout)["payload"] == SECRET_FRAME
    unknown = _run("dead-letters", "show", "ffffffffffff", env=env)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        f"transcript-indexer: error: dead-letters show: in {state}: no entries with id 'ffffffffffff'"
    )


def test_replay_sends_quarantined_transcripts_through_the_rules_loaded_now(
    tmp_path: Path, opensearch_url: str
) -> None:
    """A transcript quarantined before a rule fix is redacted by the rules installed now,
    indexed, and its outcome recorded; one frame alone is refused (it would replace the
    whole conversation)."""
    state = tmp_path / "state"
    ids = _fill(state)
    env = {"INDEXER_STATE_DIR": str(state), "OPENSEARCH_URL": opensearch_url}
    refused = _run("dead-letters", "replay", ids[2], env=env)
    assert refused.returncode == 2
    assert "holds one frame, not a conversation" in refused.stderr

    sent = _run("--log-level", "WARNING", "dead-letters", "replay", ids[0], env=env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines() == [f"{ids[0]}  delivered", "1 of 1 delivered"]
    client = OpenSearch(hosts=[opensearch_url])
    client.indices.refresh(index="transcripts")
    (hit,) = client.search(index="transcripts", body={"query": {"match_all": {}}})["hits"]["hits"]
    assert hit["_source"]["conversation_id"] == "c-1"
    assert CARD not in json.dumps(hit["_source"])
    assert "[CREDIT_CARD]" in json.dumps(hit["_source"])

    listed = _run("dead-letters", "list", env=env)
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith(ids[0])]
    assert "[replayed: delivered (" in line
    rest = _run("--log-level", "WARNING", "dead-letters", "replay", "--kind", "quarantined", env=env)
    assert rest.stdout.splitlines() == [f"{ids[1]}  delivered", "1 of 1 delivered"], rest.stderr
    assert (
        _run("dead-letters", "replay", "--kind", "quarantined", env=env).stdout.strip() == "nothing to replay"
    )
