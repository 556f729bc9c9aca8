"""Hostile input: one bad frame, document or answer is contained to itself, never the worker's end.

Each case was reproduced against the worker before the fix (a crash at every start, through
the journal); each now ends in the dead-letter store with a reason, counted, and the rest
goes on. A hypothesis fuzz mutates real-shaped payloads and runs them through parse,
tracker, redaction and the outbox.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.completion import detect_completion
from indexer.config import CompletionSettings, Config, RecoverySettings
from indexer.deadletter import DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.errors import MalformedMessage
from indexer.frames import accept_frame
from indexer.journal import Journal
from indexer.models import Communication, ConversationEvent, Envelope, Participant
from indexer.outbox import Outbox
from indexer.pipeline import Pipeline, finalize_transcripts
from indexer.plugins import Plugins, get_plugin_manager
from indexer.recovery import FindMissed, Gap, RecoveryRequest, recover_transcripts
from indexer.redaction import RuleSet
from indexer.serialization import parse_envelope
from indexer.stats import Statistics
from indexer.worker import _restore
from tests.factories import conversation, in_process, run_detector, transcription, utterance
from tests.installed import PROJECT_ONLY
from tests.test_sdk_conformance import CALL, CONVERSATION, QUEUE, sdk_sample

TRANSCRIPTION_TOPIC = f"v2.conversations.{CONVERSATION}.transcription"


def frame(topic: str, body: Any) -> str:
    return json.dumps({"topicName": topic, "version": "2", "eventBody": body})


def ongoing(**changes: Any) -> dict[str, Any]:
    """The sample transcription message with ``changes`` made to its first alternative / body."""
    body = copy.deepcopy(sdk_sample("transcription-ongoing"))
    alternative = body["transcripts"][0]["alternatives"][0]
    for key, value in changes.items():
        (body if key in body else alternative)[key] = value
    return body


POISON = {
    "session start 2^62": frame(TRANSCRIPTION_TOPIC, ongoing(sessionStartTimeMs=2**62)),
    "offset 2^45": frame(TRANSCRIPTION_TOPIC, ongoing(offsetMs=2**45)),
    "offset -2^45": frame(TRANSCRIPTION_TOPIC, ongoing(offsetMs=-(2**45))),
    "duration 2^62": frame(TRANSCRIPTION_TOPIC, ongoing(durationMs=2**62)),
    "year 1 at +14:00": frame(
        f"v2.routing.queues.{QUEUE}.conversations",
        {"id": CONVERSATION, "participants": [{"id": "p", "connectedTime": "0001-01-01T00:00:00+14:00"}]},
    ),
    "year 9999 at -14:00": frame(
        f"v2.routing.queues.{QUEUE}.conversations",
        {"id": CONVERSATION, "participants": [{"id": "p", "endTime": "9999-12-31T23:59:59-14:00"}]},
    ),
    "100,000 levels of nesting": '{"topicName": "channel.metadata", "eventBody": '
    + "[" * 100_000
    + "]" * 100_000
    + "}",
}


@pytest.mark.parametrize("raw", POISON.values(), ids=POISON.keys())
async def test_poison_frames_are_dead_lettered_with_a_reason(raw: str, tmp_path: Path) -> None:
    """Values out of range are refused at the model boundary; the reason names no value."""
    with pytest.raises(MalformedMessage) as caught:
        parse_envelope(raw)
    assert "out of range" in caught.value.reason or "deeply" in caught.value.reason
    assert "4611686018427387904" not in caught.value.reason and "35184372088832" not in caught.value.reason
    stats = Statistics()
    dead = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    send, _receive = trio.open_memory_channel[Envelope](1)
    assert await accept_frame(raw, send, stats=stats, dead_letters=dead) is None
    assert stats.messages["malformed"] == 1 and [d["kind"] for d in dead.read()] == ["malformed_message"]


async def test_a_frame_the_tracker_cannot_take_is_contained(tmp_path: Path) -> None:
    """An envelope the tracker raises on (built past the parser) is dead-lettered; the
    conversation it belongs to and every other one go on."""
    bad_call = Communication(id="c", state=5)  # type: ignore[arg-type]  # not a string
    bad = Envelope(
        topic_name=f"v2.routing.queues.{QUEUE}.conversations",
        event_body=ConversationEvent(id="other", participants=(Participant(id="p", calls=(bad_call,)),)),
    )
    envelopes = [
        bad,
        conversation(ended=True),
        transcription(utterance("u1", "hello there", 1000)),
        transcription(status="SESSION_ENDED"),
    ]
    journal = Journal(tmp_path / "journal")
    documents, stats, dead = await run_detector(envelopes, tmp_path, journal=journal)
    assert [d.completion_reason for d in documents] == ["ended"]
    assert stats.messages["failed"] == 1
    (letter,) = dead.read()
    assert letter["kind"] == "processing_failed" and letter["conversation_id"] == "other"
    assert "AttributeError" in letter["reason"]
    assert all(cid != "other" for cid, _ in Journal(journal.folder).load()), "never replayed at a restart"


async def test_a_document_that_cannot_be_written_is_contained(tmp_path: Path) -> None:
    """A time that overflows when written (year 1 at +14:00, built past the parser) sends
    its conversation to the dead-letter store; the next one is written."""
    year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    bad = ConversationEvent(
        id="bad", participants=(Participant(id="p", connected_time=year_one, end_time=year_one),)
    )
    good, _, _ = await run_detector(
        [
            conversation(ended=True),
            transcription(utterance("u1", "fine", 1000)),
            transcription(status="SESSION_ENDED"),
        ],
        tmp_path,
    )
    worse, _, _ = await run_detector(
        [Envelope(topic_name=f"v2.routing.queues.{QUEUE}.conversations", event_body=bad)], tmp_path
    )
    stats = Statistics()
    dead = DeadLetterStore(tmp_path / "dead2.ndjson", stats)
    outbox = Outbox(tmp_path / "outbox")
    send, receive = trio.open_memory_channel[TranscriptDocument](10)
    for document in [*worse, *good]:
        send.send_nowait(document)
    send.close()
    await finalize_transcripts(
        receive, in_process(Pipeline(validators=(), rules=RuleSet(()))), outbox, dead, stats
    )
    assert [d.conversation_id for d in Outbox(tmp_path / "outbox").load()] == [good[0].conversation_id]
    assert [(d["kind"], d["conversation_id"]) for d in dead.read()] == [("finalize_failed", "bad")]


async def test_a_journal_frame_that_no_longer_parses_is_moved_aside(tmp_path: Path) -> None:
    """A journal whose frames fail at resume does not fail every start: the frames are
    dead-lettered once and the conversation is marked done in the journal."""
    journal = Journal(tmp_path / "journal")
    journal.record("poisoned", POISON["session start 2^62"])
    journal.record("fine", frame(TRANSCRIPTION_TOPIC, ongoing()))
    await journal.flush()
    stats = Statistics()
    dead = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    first = Journal(journal.folder)
    restored = await _restore(first, dead)
    await first.flush()
    assert len(restored) == 1 and [d["kind"] for d in dead.read()] == ["journal_unreadable"]
    again = await _restore(Journal(journal.folder), dead)
    assert len(again) == 1 and len(dead.read()) == 1, "moved aside: not dead-lettered at every start"


class BrokenClient:
    """A REST client whose conversation answer breaks the code that reads it (not a REST error)."""

    async def ended_conversations(self, start: str, end: str, queue_ids: list[str]) -> list[Any]:
        from indexer.models import AnalyticsConversation

        return [AnalyticsConversation(conversation_id=c) for c in ("c1", "c2")]

    async def conversation(self, conversation_id: str) -> Any:
        if conversation_id == "c1":
            raise ZeroDivisionError("an unexpected failure")
        return {"id": conversation_id}

    async def post_call_transcript(self, conversation_id: str, communication_id: str) -> Any:
        return None


async def test_a_recovery_failure_is_contained_to_its_conversation() -> None:
    stats = Statistics()
    requests_send, requests = trio.open_memory_channel[RecoveryRequest](1)
    documents_send, documents = trio.open_memory_channel[TranscriptDocument](10)
    settings = RecoverySettings(post_call_wait_s=0, post_call_follow_up_s=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: recover_transcripts(
                BrokenClient(),
                requests,
                documents_send,
                settings=settings,
                stats=stats,
                queue_names={},  # type: ignore[arg-type]
            )
        )
        await requests_send.send(FindMissed(0, 60_000, known=frozenset()))
        await requests_send.aclose()
        recovered = [d async for d in documents]
    assert [d.conversation_id for d in recovered] == ["c2"]
    assert stats.recovered["failed"] == 1


# --- fuzz: parse → tracker → redaction → outbox ---------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def key_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            found.append((*prefix, key))
            found += key_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.append((*prefix, index))
            found += key_paths(value, (*prefix, index))
    return found


PATHS = [(i, path) for i, (_, body) in enumerate(CALL) for path in key_paths(body)]


def mutated(changes: list[tuple[tuple[int, tuple[Any, ...]], Any]]) -> list[str]:
    """The sample call's frames with each value set at its path (paths an earlier change
    removed are left alone)."""
    bodies = [copy.deepcopy(body) for _, body in CALL]

    def has(container: Any, step: Any) -> bool:
        if isinstance(container, dict):
            return step in container
        return isinstance(container, list) and isinstance(step, int) and step < len(container)

    for (i, path), value in changes:
        target: Any = bodies[i]
        for step in path[:-1]:
            if not has(target, step):
                break
            target = target[step]
        else:
            if has(target, path[-1]) or isinstance(target, dict):
                target[path[-1]] = value
    return [frame(topic, body) for (topic, _), body in zip(CALL, bodies, strict=True)]


RULES = RuleSet(tuple(Plugins(get_plugin_manager(env=PROJECT_ONLY)).redaction_rules(Config())))


#: Examples per run: 120 in ``make test``; ``FUZZ_EXAMPLES=5000 pytest tests/test_hostile_input.py``
#: for a longer run (see the README).
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))


@settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON_VALUES), min_size=1, max_size=12))
async def test_fuzzed_payloads_never_escape_containment(
    tmp_path: Path, changes: list[tuple[tuple[int, tuple[Any, ...]], Any]]
) -> None:
    """Any value at any key of the sample call: every frame parses or is dead-lettered, and
    the detector, redaction and the outbox contain whatever fails to one conversation."""
    example = tmp_path / uuid.uuid4().hex  # hypothesis runs many examples in one tmp_path
    stats = Statistics()
    dead = DeadLetterStore(example / "dead.ndjson", stats)
    envelopes_send, envelopes = trio.open_memory_channel[Envelope | Gap](100)
    docs_send, docs = trio.open_memory_channel[TranscriptDocument](100)
    for raw in mutated(changes):
        await accept_frame(raw, envelopes_send, stats=stats, dead_letters=dead)
    envelopes_send.close()
    await detect_completion(
        envelopes, docs_send, settings=CompletionSettings(grace_period_s=1.0), dead_letters=dead, stats=stats
    )
    outbox = Outbox(example / "outbox")
    await finalize_transcripts(docs, in_process(Pipeline(validators=(), rules=RULES)), outbox, dead, stats)
    written = outbox.usage().entries
    assert written + stats.dead_letters >= 1  # the conversation is indexed or kept with a reason


# --- redaction is not bypassed by Unicode ----------------------------------------------------

CARD = "4111 1111 1111 1111"
WIDE_CARD = CARD.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})  # full-width digits
ARABIC_CARD = CARD.translate({ord(d): 0x0660 + int(d) for d in "0123456789"})  # Arabic-Indic digits
UNICODE_PII = {
    "no-break spaces (phone)": ("call me at 415\u00a0555\u00a00123", "4155550123"),
    "no-break spaces (card)": ("my card is 4111\u00a01111\u00a01111\u00a01111", "4111111111111111"),
    "narrow no-break spaces": ("my card is 4111\u202f1111\u202f1111\u202f1111", "4111111111111111"),
    "thin spaces": ("my card is 4111\u20091111\u20091111\u20091111", "4111111111111111"),
    "zero-width spaces": ("my card is 4111\u200b1111\u200b1111\u200b1111", "4111111111111111"),
    "non-breaking hyphens": ("my card is 4111\u20111111\u20111111\u20111111", "4111111111111111"),
    "figure dashes": ("my card is 4111\u20121111\u20121111\u20121111", "4111111111111111"),
    "en dashes": ("my card is 4111\u20131111\u20131111\u20131111", "4111111111111111"),
    "full-width digits": ("my card is " + WIDE_CARD, "4111111111111111"),
    "Arabic-Indic digits": ("my card is " + ARABIC_CARD, "4111111111111111"),
    "mixed separators (SSN)": ("my ssn is 123\u2011\u200b45\u20116789", "123456789"),
    "full-width @ and dots (email)": ("email me at jane\uff0edoe\uff20example\uff0ecom", "janedoeexamplecom"),
}


def digits_and_letters(text: str) -> str:
    """``text`` as its ASCII letters and digits only (what a value is made of)."""
    from indexer.redaction import normalised

    return "".join(ch for ch in normalised(text)[0].lower() if ch.isascii() and ch.isalnum())


@pytest.mark.parametrize(("text", "value"), UNICODE_PII.values(), ids=UNICODE_PII.keys())
def test_unicode_separators_and_digits_do_not_hide_pii(text: str, value: str) -> None:
    """The text and the words of the utterance are both redacted (not the words alone),
    the counts report the finding, and the verification gate passes."""
    from indexer.tracker import ConversationState

    state = ConversationState(conversation_id="c", first_event_at=0, last_event_at=0)
    state.apply_conversation(conversation(ended=True).event_body, 0)  # type: ignore[arg-type]
    state.apply_transcription(transcription(utterance("u1", text, 1000)).event_body, 0)  # type: ignore[arg-type]
    redacted = RULES.redact(state.to_document("ended", {}))
    (spoken,) = redacted.utterances
    assert value not in digits_and_letters(spoken.text), spoken.text
    assert value not in digits_and_letters(" ".join(w.word for w in spoken.words))
    assert redacted.redaction is not None and sum(redacted.redaction.counts.values()) >= 1


def test_text_and_words_that_disagree_fail_the_document_closed() -> None:
    """The words spell a phone number the (decorated) text does not show: one of the two
    views hides something from the rules, so the transcript is quarantined, not indexed."""
    from indexer.document import DocWord
    from indexer.errors import ResidualPII
    from indexer.tracker import ConversationState

    state = ConversationState(conversation_id="c", first_event_at=0, last_event_at=0)
    state.apply_conversation(conversation(ended=True).event_body, 0)  # type: ignore[arg-type]
    state.apply_transcription(
        transcription(utterance("u1", "call me at the usual number", 1000)).event_body, 0
    )  # type: ignore[arg-type]
    document = state.to_document("ended", {})
    spoken = ["call", "me", "at", "415", "555", "0123"]
    words = tuple(DocWord(word=w, offset_ms=None, duration_ms=None, confidence=None) for w in spoken)
    document = attrs.evolve(document, utterances=(attrs.evolve(document.utterances[0], words=words),))
    with pytest.raises(ResidualPII, match="disagree") as caught:
        RULES.redact(document)
    assert "415" not in str(caught.value)


# --- plugins are isolated: redaction in worker processes, with a time limit ---------------


def said(conversation_id: str, text: str) -> TranscriptDocument:
    from indexer.tracker import ConversationState

    state = ConversationState(conversation_id=conversation_id, first_event_at=0, last_event_at=0)
    state.apply_conversation(conversation(ended=True).event_body, 0)  # type: ignore[arg-type]
    state.apply_transcription(transcription(utterance("u1", text, 1000)).event_body, 0)  # type: ignore[arg-type]
    return state.to_document("ended", {})


async def finalize_all(
    rule: Any, documents: list[TranscriptDocument], tmp_path: Path, time_limit_s: float
) -> tuple[list[str], list[dict[str, Any]], int]:
    """Run ``documents`` through finalize_transcripts with ``rule`` in worker processes;
    returns the conversations written, the dead letters, and how often the event loop
    ticked every 50 ms meanwhile."""
    from indexer.isolation import open_finalizer

    stats = Statistics()
    dead = DeadLetterStore(tmp_path / "dead.ndjson", stats)
    outbox = Outbox(tmp_path / "outbox")
    send, receive = trio.open_memory_channel[TranscriptDocument](10)
    for document in documents:
        send.send_nowait(document)
    send.close()
    ticks = 0
    async with (
        open_finalizer(
            Pipeline(validators=(), rules=RuleSet((rule,))), time_limit_s=time_limit_s
        ) as finalizer,
        trio.open_nursery() as nursery,
    ):

        async def tick() -> None:
            nonlocal ticks
            while True:
                await trio.sleep(0.05)
                ticks += 1

        nursery.start_soon(tick)
        await finalize_transcripts(receive, finalizer.finalize, outbox, dead, stats)
        nursery.cancel_scope.cancel()
    return [d.conversation_id for d in Outbox(tmp_path / "outbox").load()], dead.read(), ticks


@pytest.mark.parametrize("what", ["junk", "interrupt", "exit", "hang"])
async def test_a_misbehaving_rule_fails_its_conversation_only(what: str, tmp_path: Path) -> None:
    """Junk results, KeyboardInterrupt, SystemExit or a rule that never returns: that
    conversation is quarantined with the reason, the next one is indexed."""
    from tests.hostile_rules import Misbehaving

    written, dead, _ = await finalize_all(
        Misbehaving(what), [said("bad", "a trigger here"), said("good", "nothing to see")], tmp_path, 3.0
    )
    assert written == ["good"]
    (letter,) = dead
    assert letter["kind"] == "redaction_failed" and letter["conversation_id"] == "bad"
    expected = {
        "junk": "not a finding",
        "interrupt": "KeyboardInterrupt",
        "exit": "SystemExit",
        "hang": "within 3 s",
    }
    assert expected[what] in letter["reason"]


async def test_a_slow_rule_does_not_stall_the_event_loop(tmp_path: Path) -> None:
    """A rule that takes 3 s a call runs in a worker process: the event loop (sockets,
    heartbeats, /healthz) keeps ticking meanwhile."""
    from tests.hostile_rules import Misbehaving

    start = trio.current_time()
    written, dead, ticks = await finalize_all(
        Misbehaving("sleep"), [said("slow", "a trigger here")], tmp_path, 30
    )
    elapsed = trio.current_time() - start
    assert written == ["slow"] and dead == []
    assert elapsed >= 3 and ticks >= (elapsed - 1) / 0.05 * 0.5, (elapsed, ticks)


def test_the_installed_rules_can_run_in_worker_processes() -> None:
    """The built-in and example rules pickle (no lambdas), so the worker runs them in worker
    processes rather than falling back to threads."""
    import pickle

    validators = tuple(Plugins(get_plugin_manager(env=PROJECT_ONLY)).validators(Config()))
    restored = pickle.loads(pickle.dumps(Pipeline(validators=validators, rules=RULES)))
    assert restored.rules.version == RULES.version
    assert restored.rules.redact_text("call me at 415 555 0123")[0] == "call me at [PHONE_NUMBER]"
