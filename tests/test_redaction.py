"""The rule set and the pipeline: merging findings, words, verification, failing closed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.errors import RedactionFailed
from indexer.outbox import Outbox
from indexer.pipeline import Pipeline, ValidationFailed, finalize_transcripts
from indexer.redaction import Finding, RuleSet
from indexer.stats import Statistics
from indexer.tracker import ConversationState
from tests.factories import conversation, transcription, utterance


@attrs.frozen
class Pattern:
    """A minimal rule for tests."""

    id: str
    entity_type: str
    regex: str
    version: str = "1"

    def find(self, text: str) -> Iterator[Finding]:
        for m in re.finditer(self.regex, text):
            yield Finding(m.start(), m.end(), self.entity_type, self.id)


@attrs.frozen
class Exploding:
    id: str = "test.exploding"
    entity_type: str = "X"
    version: str = "1"

    def find(self, text: str) -> Iterator[Finding]:
        raise RuntimeError("bug in a plugin")


@attrs.frozen
class Sloppy:
    """Reports only the first 'secret' in a text (a realistic bug): redaction leaves PII behind."""

    id: str = "test.sloppy"
    entity_type: str = "SECRET"
    version: str = "1"

    def find(self, text: str) -> Iterator[Finding]:
        m = re.search("secret", text)
        if m:
            yield Finding(m.start(), m.end(), self.entity_type, self.id)


def _document(*texts: str) -> TranscriptDocument:
    state = ConversationState(conversation_id="c1", first_event_at=0, last_event_at=0)
    for i, text in enumerate(texts):
        body = transcription(utterance(f"u{i}", text, 1000 * (i + 1))).event_body
        state.apply_transcription(body, 0)  # type: ignore[arg-type]
    body = conversation(ended=True).event_body
    state.apply_conversation(body, 0)  # type: ignore[arg-type]
    return state.to_document("ended", {})


def test_overlapping_findings_merge_into_one_placeholder() -> None:
    """Overlapping findings of different rules become one replacement."""
    rules = RuleSet((Pattern("a", "NUMBER", r"\d{4} \d{4}"), Pattern("b", "CODE", r"\d{4} \d{4} \d{4}")))
    assert rules.redact_text("x 1234 5678 9012 y")[0] == "x [CODE] y"


def test_redact_document_covers_text_words_and_summary() -> None:
    """Utterance text, words and the whole-text field are redacted; counts never hold values."""
    rules = RuleSet((Pattern("t.code", "CODE", r"\b\d{6}\b"),))
    redacted = rules.redact(_document("my code is 123456", "nothing here"))
    assert redacted.utterances[0].text == "my code is [CODE]"
    assert [w.word for w in redacted.utterances[0].words] == ["my", "code", "is", "[CODE]"]
    assert "123456" not in redacted.text
    assert redacted.redaction is not None
    assert redacted.redaction.counts == {"CODE": 1}
    assert redacted.redaction.rule_set_version == rules.version


def test_rule_set_version_changes_with_rules() -> None:
    """The rule-set version identifies the rule ids and versions."""
    one = RuleSet((Pattern("a", "A", "a"),))
    assert one.version == RuleSet((Pattern("a", "A", "a"),)).version
    assert one.version != RuleSet((Pattern("a", "A", "a", version="2"),)).version


def test_a_raising_rule_fails_closed() -> None:
    """A rule that raises stops the transcript with the rule id, not its text."""
    with pytest.raises(RedactionFailed, match=r"test\.exploding"):
        RuleSet((Exploding(),)).redact(_document("hello"))


def test_verification_rescan_catches_residual_pii() -> None:
    """A rule that misses a value is caught by the re-scan of the redacted document."""
    with pytest.raises(RedactionFailed, match=r"re-scan.*test\.sloppy"):
        RuleSet((Sloppy(),)).redact(_document("one secret and another secret"))


@attrs.frozen
class RejectAll:
    name: str = "test.reject"

    def validate(self, document: TranscriptDocument) -> list[str]:
        return ["always wrong"]


def test_validators_run_before_redaction() -> None:
    """A validator's problems stop the transcript."""
    with pytest.raises(ValidationFailed, match=r"test\.reject: always wrong"):
        Pipeline(validators=(RejectAll(),), rules=RuleSet(())).finalize(_document("hello"))


async def test_failed_redaction_goes_to_dead_letters_not_the_outbox(tmp_path: Path) -> None:
    """Fail closed: the transcript never reaches the outbox or a sink; the dead-letter store keeps it."""
    stats = Statistics()
    dead = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    outbox = Outbox(tmp_path / "outbox")
    send, receive = trio.open_memory_channel[TranscriptDocument](10)
    pipeline = Pipeline(validators=(), rules=RuleSet((Exploding(),)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(finalize_transcripts, receive, pipeline, outbox, dead, stats)
        await send.send(_document("hello"))
        await send.aclose()
    assert outbox.usage().entries == 0
    assert list((tmp_path / "outbox").glob("*")) == []
    (letter,) = dead.read()
    assert letter["kind"] == "redaction_failed"
    assert letter["conversation_id"] == "c1"
    assert stats.dead_letters == 1
