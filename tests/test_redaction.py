"""The rule set and the pipeline: merging findings, words, verification, failing closed."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from indexer.config import load_config
from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.errors import ConfigError, RedactionFailed, ResidualPII
from indexer.outbox import Outbox
from indexer.pipeline import Pipeline, ValidationFailed, finalize_transcripts
from indexer.redaction import LEAD_CHARS, Finding, Operators, RuleSet, last_words, leads
from indexer.stats import Statistics
from indexer.tracker import ConversationState
from tests.factories import conversation, in_process, transcription, utterance


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


def _document(*texts: str | tuple[str, str, int]) -> TranscriptDocument:
    """Utterances from texts (the customer, 1 s apart) or (channel, text, offset ms) tuples."""
    state = ConversationState(conversation_id="c1", first_event_at=0, last_event_at=0)
    for i, item in enumerate(texts):
        channel, text, offset_ms = item if isinstance(item, tuple) else ("EXTERNAL", item, 1000 * (i + 1))
        body = transcription(utterance(f"u{i}", text, offset_ms, channel=channel)).event_body
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


@attrs.frozen
class Screened:
    """A rule with a prefilter that counts its calls (one list shared by all)."""

    id: str
    calls: list[str]
    prefilter: Callable[[str], bool]
    entity_type: str = "DIGITS"
    version: str = "1"

    def find(self, text: str) -> Iterator[Finding]:
        self.calls.append(self.id)
        for m in re.finditer(r"\d+", text):
            yield Finding(m.start(), m.end(), self.entity_type, self.id)


def test_rules_sharing_a_prefilter_are_skipped_together() -> None:
    """One prefilter call per text for all the rules sharing it; none of them runs when it is False."""
    tested: list[str] = []

    def has_digit(text: str) -> bool:
        tested.append(text)
        return any(ch.isdigit() for ch in text)

    calls: list[str] = []
    rules = RuleSet((Screened("t.a", calls, has_digit), CARD, Screened("t.b", calls, has_digit)))
    assert rules.findings("no numbers here") == [] and calls == []
    assert [f.rule_id for f in rules.findings("call 42")] == ["t.a"]
    assert calls == ["t.a", "t.b"] and tested == ["no numbers here", "call 42"]


def test_a_raising_prefilter_fails_closed_naming_its_rules() -> None:
    def broken(text: str) -> bool:
        raise ValueError(text)

    rules = RuleSet((Screened("t.a", [], broken), Screened("t.b", [], broken)))
    with pytest.raises(RedactionFailed, match=r"prefilter of rules t\.a, t\.b raised ValueError$"):
        rules.redact(_document("secret text"))


def test_a_raising_rule_fails_closed() -> None:
    """A rule that raises stops the transcript with the rule id, not its text."""
    with pytest.raises(RedactionFailed, match=r"test\.exploding"):
        RuleSet((Exploding(),)).redact(_document("hello"))


def test_verification_rescan_catches_residual_pii() -> None:
    """A rule that misses a value is caught by the re-scan of the redacted document."""
    with pytest.raises(ResidualPII, match=r"re-scan.*test\.sloppy") as caught:
        RuleSet((Sloppy(),)).redact(_document("one secret and another secret"))
    assert caught.value.rule_ids == ["test.sloppy"]


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
        nursery.start_soon(finalize_transcripts, receive, in_process(pipeline), outbox, dead, stats)
        await send.send(_document("hello"))
        await send.aclose()
    assert outbox.usage().entries == 0
    assert list((tmp_path / "outbox").glob("*")) == []
    (letter,) = dead.read()
    assert letter["kind"] == "redaction_failed"
    assert letter["conversation_id"] == "c1"
    assert stats.dead_letters == 1


async def test_documents_are_finalized_several_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """With ``concurrency`` 2 two conversations are in redaction at once (one per worker
    process, so redaction uses both cores), and every one reaches the outbox."""
    in_flight = peak = 0

    async def slow_finalize(document: TranscriptDocument) -> TranscriptDocument:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await trio.sleep(1)
        in_flight -= 1
        return document

    stats = Statistics()
    outbox = Outbox(tmp_path / "outbox")
    send, receive = trio.open_memory_channel[TranscriptDocument](10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            functools.partial(
                finalize_transcripts,
                receive,
                slow_finalize,
                outbox,
                DeadLetterStore(tmp_path / "dead.ndjson", stats),
                stats,
                concurrency=2,
            )
        )
        for index in range(6):
            await send.send(attrs.evolve(_document("hello"), conversation_id=f"c{index}"))
        await send.aclose()
    assert peak == 2
    assert sorted(d.conversation_id for d in await outbox.next_batch(10)) == [f"c{i}" for i in range(6)]


CARD = Pattern("t.card", "CREDIT_CARD", r"\b\d{4} \d{4} \d{4} \d{4}\b")


async def test_a_worker_process_sends_back_what_redaction_changed() -> None:
    """Finalized in a worker process (which returns only the utterances it changed, the
    text and the summary), a document is the one finalized in this process: redacted
    utterances and words replaced, the others left as they were."""
    from indexer.isolation import open_finalizer

    pipeline = Pipeline(validators=(), rules=RuleSet((Pattern("t.digits", "DIGITS", r"\d{4}"),)))
    document = _document("hello there", "my pin is 1234 thanks", "bye now", "and 5678 too")
    here = pipeline.finalize(document)
    async with open_finalizer(pipeline) as finalizer:
        assert finalizer.concurrency >= 1
        there = await finalizer.finalize(document)
    assert there == here
    assert [u.text for u in there.utterances] == [
        "hello there", "my pin is [DIGITS] thanks", "bye now", "and [DIGITS] too"
    ]  # fmt: skip
    assert [w.word for w in there.utterances[1].words][3] == "[DIGITS]"
    assert there.utterances[0] is document.utterances[0]
    assert there.redaction is not None and there.redaction.counts == {"DIGITS": 2}


def test_a_value_split_over_two_utterances_of_one_speaker_is_redacted_in_both() -> None:
    """Digit groups read out over two utterances, the agent speaking in between."""
    document = _document(
        ("EXTERNAL", "my card is 4111 1111", 1000),
        ("INTERNAL", "go on", 2500),
        ("EXTERNAL", "1111 1111 thanks", 4000),
    )
    redacted = RuleSet((CARD,)).redact(document)
    texts = [u.text for u in redacted.utterances]
    assert texts == ["my card is [CREDIT_CARD]", "go on", "[CREDIT_CARD] thanks"]
    assert [w.word for w in redacted.utterances[2].words] == ["[CREDIT_CARD]", "[CREDIT_CARD]", "thanks"]
    assert redacted.redaction is not None and redacted.redaction.counts == {"CREDIT_CARD": 1}
    entries = {(e.utterance_id, e.field, e.start, e.end) for e in redacted.redaction.findings}
    assert entries == {
        ("u0", "text", 11, 20),
        ("u2", "text", 0, 9),
        ("u0", "words", 3, 5),
        ("u2", "words", 0, 2),
    }
    original = document.utterances[0].text
    assert original[11:20] == "4111 1111"


def test_utterances_far_apart_or_of_the_other_speaker_are_not_joined() -> None:
    """A passage ends after 15 s of silence from the speaker, and never spans speakers."""
    apart = _document(("EXTERNAL", "it is 4111 1111", 1000), ("EXTERNAL", "1111 1111", 40_000))
    assert [u.text for u in RuleSet((CARD,)).redact(apart).utterances] == ["it is 4111 1111", "1111 1111"]
    other = _document(("EXTERNAL", "it is 4111 1111", 1000), ("INTERNAL", "1111 1111", 2500))
    assert [u.text for u in RuleSet((CARD,)).redact(other).utterances] == ["it is 4111 1111", "1111 1111"]


@attrs.frozen
class AfterWord:
    """A rule that needs a context word in the 40 characters before its match."""

    id: str = "test.phone"
    entity_type: str = "PHONE"
    version: str = "1"

    def find(self, text: str) -> Iterator[Finding]:
        for m in re.finditer(r"\b\d{10}\b", text):
            if "phone" in text[max(m.start() - 40, 0) : m.start()]:
                yield Finding(m.start(), m.end(), self.entity_type, self.id)


def test_the_other_partys_question_is_context_for_the_answer() -> None:
    """The agent's last words before the customer's answer are context; only the answer is redacted."""
    asked = _document(
        ("EXTERNAL", "hi I need to change my details", 1000),
        ("INTERNAL", "sure what phone number should we use", 3000),
        ("EXTERNAL", "it's 5551234567", 6000),
    )
    redacted = RuleSet((AfterWord(),)).redact(asked)
    assert [u.text for u in redacted.utterances] == [
        "hi I need to change my details",
        "sure what phone number should we use",
        "it's [PHONE]",
    ]
    assert [w.word for w in redacted.utterances[2].words] == ["it's", "[PHONE]"]
    assert redacted.redaction is not None and redacted.redaction.counts == {"PHONE": 1}
    assert {(e.utterance_id, e.field, e.start, e.end) for e in redacted.redaction.findings} == {
        ("u2", "text", 5, 15),
        ("u2", "words", 1, 2),
    }
    # the customer's own words before a pause, or the agent's question 20 s before: context
    for question in (
        ("EXTERNAL", "my phone number", 1000),
        ("INTERNAL", "what phone number should we use", 1000),
    ):
        document = _document(question, ("EXTERNAL", "it's 5551234567", 25_000))
        assert RuleSet((AfterWord(),)).redact(document).utterances[1].text == "it's [PHONE]"
    # more than LEAD_CHARS before the number: no context, and the gate agrees
    far = _document(
        ("INTERNAL", "what phone number should we use", 1000),
        ("INTERNAL", "take your time there is no hurry at all, I can wait here for you", 2000),
        ("EXTERNAL", "it's 5551234567", 3000),
    )
    assert RuleSet((AfterWord(),)).redact(far).utterances[2].text == "it's 5551234567"


def test_a_value_in_the_question_is_not_found_in_the_answer() -> None:
    """The lead is context only: values in it belong to the other party's passage."""
    document = _document(("INTERNAL", "phone 5550001111 or", 1000), ("EXTERNAL", "phone 5551234567", 2000))
    rules = RuleSet((AfterWord(),))
    assert [u.text for u in rules.redact(document).utterances] == ["phone [PHONE] or", "phone [PHONE]"]
    found = rules.findings("it's 5551234567", lead="phone 5550001111 or what phone")
    assert [(f.start, f.end, f.value) for f in found] == [(5, 15, "5551234567")]


def test_the_gate_reads_the_answer_after_its_question() -> None:
    """The verification re-scan uses the same leads as redaction."""
    document = _document(
        ("INTERNAL", "what phone number should we use", 1000), ("EXTERNAL", "it's 5551234567", 3000)
    )
    with pytest.raises(ResidualPII) as caught:
        RuleSet((AfterWord(),)).verify(document)
    assert caught.value.rule_ids == ["test.phone"]


def test_leads_are_the_last_words_before_each_utterance() -> None:
    assert last_words("short question?") == "short question?"
    long = "could you please confirm for me the best telephone number to reach you on today?"
    assert len(long) > LEAD_CHARS
    assert last_words(long) == "confirm for me the best telephone number to reach you on today?"
    assert last_words("x" * 100) == ""
    assert leads(["hello", "what number", long, "ok"]) == [
        "",
        "hello",
        "hello\nwhat number",
        "confirm for me the best telephone number to reach you on today?",
    ]
    assert leads(["a " * 50, "b"])[1] == last_words("a " * 50)


def test_operators_mask_keep_the_last_four_or_hash_with_a_key() -> None:
    """partial keeps 4 characters; hash links the same value across forms, not across keys."""
    card = Finding(0, 19, "CREDIT_CARD", "t.card")
    partial = Operators({"t.card": "partial"})
    assert partial.replacement(card, "4111 1111 1111 1234") == "[CREDIT_CARD ****1234]"
    assert partial.replacement(Finding(0, 3, "CVV", "t.cvv"), "123") == "[CVV]"  # too short to keep any
    hashed = Operators({"CREDIT_CARD": "hash"}, hmac_key=b"k" * 32)
    written = hashed.replacement(card, "4111 1111 1111 1234")
    spoken = hashed.replacement(attrs.evolve(card, value="4111111111111234"), "four one one one ...")
    assert written == spoken and re.fullmatch(r"\[CREDIT_CARD #[a-p]{16}\]", written)
    assert (
        Operators({"CREDIT_CARD": "hash"}, hmac_key=b"x" * 32).replacement(card, "4111 1111 1111 1234")
        != written
    )
    assert hashed.replacement(card, "4111 1111 1111 9999") != written
    assert Operators().replacement(card, "4111 1111 1111 1234") == "[CREDIT_CARD]"


def test_partial_masks_pass_the_verification_gate_and_are_audited() -> None:
    """The 4 kept characters are not re-found; the audit names the operator, never the value."""
    rules = RuleSet((CARD, Pattern("t.last4", "CODE", r"\b\d{4}\b")), Operators({"t.card": "partial"}))
    redacted = rules.redact(_document("card 4111 1111 1111 1234 ok"))
    assert redacted.utterances[0].text == "card [CREDIT_CARD ****1234] ok"
    assert redacted.redaction is not None
    assert {e.operator for e in redacted.redaction.findings} == {"partial"}
    assert "1111" not in repr(redacted.redaction)
    assert rules.version != RuleSet((CARD, Pattern("t.last4", "CODE", r"\b\d{4}\b"))).version


async def test_residual_pii_is_quarantined_with_rule_ids_only(tmp_path: Path) -> None:
    """The verification gate's refusal is its own dead-letter kind, naming rules, not values."""
    stats = Statistics()
    dead = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    send, receive = trio.open_memory_channel[TranscriptDocument](10)
    async with trio.open_nursery() as nursery:
        pipeline = Pipeline(validators=(), rules=RuleSet((Sloppy(),)))
        nursery.start_soon(
            finalize_transcripts, receive, in_process(pipeline), Outbox(tmp_path / "outbox"), dead, stats
        )
        await send.send(_document("one secret and another secret"))
        await send.aclose()
    (letter,) = dead.read()
    assert letter["kind"] == "quarantined"
    assert letter["reason"] == "verification re-scan still matches rules: test.sloppy"


@pytest.mark.parametrize(
    ("table", "env", "message"),
    [
        (
            "[redaction.operators]\nCREDIT_CARD = 'blur'",
            {},
            "redaction.operators.CREDIT_CARD: unknown operator 'blur'",
        ),
        ("[redaction.operators]\nEMAIL_ADDRESS = 'hash'", {}, "INDEXER_REDACTION_HMAC_KEY is not set"),
        ("", {"INDEXER_REDACTION_HMAC_KEY": "short"}, "INDEXER_REDACTION_HMAC_KEY must be at least 16"),
    ],
)
def test_operator_settings_are_checked(tmp_path: Path, table: str, env: dict[str, str], message: str) -> None:
    path = tmp_path / "indexer.toml"
    path.write_text(table)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, env, need_genesys=False)


def test_operator_settings_build_the_operators(tmp_path: Path) -> None:
    path = tmp_path / "indexer.toml"
    path.write_text("[redaction.operators]\n'pii.credit_card' = 'partial'\nEMAIL_ADDRESS = 'hash'\n")
    config = load_config(path, {"INDEXER_REDACTION_HMAC_KEY": "0123456789abcdef"}, need_genesys=False)
    operators = config.redaction.build()
    assert operators.by_rule == {"pii.credit_card": "partial", "EMAIL_ADDRESS": "hash"}
    assert operators.hmac_key == b"0123456789abcdef"
    assert "0123456789abcdef" not in repr(config)
