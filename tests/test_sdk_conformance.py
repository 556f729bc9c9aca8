"""The official Genesys Cloud SDK is the reference for every payload (issue: real payloads).

- The samples in ``schemas/samples/sdk`` round-trip through the SDK models without loss
  (they are shapes the real service can send), and the worker's models accept them.
- Every payload the emulator sends or serves round-trips through the SDK models without
  loss, for every media type, transfers and outbound calls.
- Property-based: optional fields dropped from real-shaped payloads, one at a time and in
  random sets, still parse, and the conversation is still indexed.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer import models
from indexer.digital import utterances_from_messages, utterances_from_recordings
from indexer.document import TranscriptDocument
from indexer.emulator import CorpusConversation, Emulator, EmulatorSettings, Turn
from indexer.emulator.scenario import Scenario, build_scenario
from indexer.models import Envelope
from indexer.recovery import utterances_from_post_call
from indexer.serialization import parse_envelope, structure
from indexer.tracker import ConversationState
from tests.factories import run_detector
from tests.sdk import differences

SDK_SAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "samples" / "sdk"
QUEUE = "3f1b2c4d-0e5f-4a6b-8c7d-9e0f1a2b3c4d"
CONVERSATION = "9a3c1d52-3a1e-4c3b-9f0e-6d2b7a1c4e11"

#: Sample file prefix → (SDK model, the worker's model; None where the worker reads raw JSON).
MODELS: dict[str, tuple[str, type[Any] | None]] = {
    "queue-conversation-": ("QueueConversationEventTopicConversation", models.ConversationEvent),
    "transcription-": ("TranscriptionTopicTranscriptionMessage", models.TranscriptionMessage),
    "system-": ("SystemMessageSystemMessage", models.SystemMessage),
    "channel-topics": ("ChannelTopicEntityListing", models.ChannelTopicListing),
    "channel.": ("Channel", models.Channel),
    "queue-listing": ("QueueEntityListing", models.QueueListing),
    "rest-conversation-": ("Conversation", models.ConversationEvent),
    "analytics-query-response": ("AnalyticsConversationQueryResponse", models.AnalyticsQueryResponse),
    "analytics-conversation-details": (
        "AnalyticsConversationWithoutAttributes",
        models.AnalyticsConversation,
    ),
    "transcript-url": ("TranscriptUrl", models.TranscriptUrl),
    "recordings-": ("list[Recording]", None),
    "messaging-conversation": ("MessageConversation", models.MessagingConversation),
    "messages-bulk": ("TextMessageListing", models.TextMessageListing),
}

#: JSON keys the worker requires (see indexer.models): never dropped by the tolerance tests.
REQUIRED = {"id", "conversationId", "communicationId", "connectUri"}


def sdk_sample(name: str) -> Any:
    return json.loads((SDK_SAMPLES / f"{name}.json").read_text())


def sample_files() -> list[Path]:
    return sorted(p for p in SDK_SAMPLES.glob("*.json") if p.name != "sta-transcript.json")


def model_of(path: Path) -> tuple[str, type[Any] | None]:
    return next(v for prefix, v in MODELS.items() if path.name.startswith(prefix))


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.stem)
def test_samples_are_what_the_sdk_models_hold_and_the_worker_reads(path: Path) -> None:
    """Each sample loses nothing through its SDK model, and parses through ours."""
    sdk_model, ours = model_of(path)
    data = json.loads(path.read_text())
    assert differences(data, sdk_model) == []
    if ours is not None:
        structure(data, ours)
    if path.name.startswith("recordings-"):
        assert [structure(r, models.Recording) for r in data]


def voice_call() -> list[Envelope]:
    """The sample call (:func:`call_frames`) as envelopes."""
    return [
        parse_envelope(json.dumps({"topicName": topic, "version": "2", "eventBody": body}))
        for topic, body in call_frames()
    ]


def test_the_sample_call_is_complete_with_its_queue_name_from_start_up() -> None:
    """IVR first, id-only and empty queue references, a snapshot per state, after-call work:
    the conversation ends, its queue is named from the queues resolved at start-up."""
    state = ConversationState(conversation_id=CONVERSATION, first_event_at=0, last_event_at=0)
    for envelope in voice_call():
        body = envelope.event_body
        if isinstance(body, models.ConversationEvent):
            state.apply_conversation(body, 0)
        elif isinstance(body, models.TranscriptionMessage):
            state.apply_transcription(body, 0)
    assert state.ended() and state.media_type() == "voice"
    document = state.to_document("ended", {QUEUE: "Billing Support"})
    assert document.complete and document.queues[0].name == "Billing Support"
    assert [p.purpose for p in document.participants][:3] == ["customer", "ivr", "acd"]
    assert document.utterances and all(u.text for u in document.utterances)


def test_digital_samples_become_utterances() -> None:
    """Messages (bulk listing, events left out), chat lines and emails as utterances in order."""
    listing = structure(sdk_sample("messages-bulk"), models.TextMessageListing)
    messages = utterances_from_messages("c", listing.entities)
    assert messages and all(u.text.strip() for u in messages)
    assert len(messages) < len(listing.entities), "events without text are not messages"
    assert {u.speaker for u in messages} == {"customer", "agent"}
    for name in ("recordings-message", "recordings-chat", "recordings-email"):
        recordings = [structure(r, models.Recording) for r in sdk_sample(name)]
        found = utterances_from_recordings("c", recordings)
        assert found and {u.speaker for u in found} <= {"customer", "agent"}, name
        times = [u.spoken_at for u in found]
        assert times == sorted(times)  # type: ignore[type-var]
    event = structure(sdk_sample("queue-conversation-message"), models.ConversationEvent)
    state = ConversationState(conversation_id=event.id, first_event_at=0, last_event_at=0)
    state.apply_conversation(event, 0)
    assert state.is_digital() and state.media_type() == "message" and state.ended()


def test_the_post_call_transcript_sample_reads() -> None:
    utterances = utterances_from_post_call(structure(sdk_sample("sta-transcript"), models.PostCallTranscript))
    assert utterances and {u.speaker for u in utterances} == {"agent", "customer"}


# --- the emulator speaks like the real service -------------------------------------------

TURNS = (
    Turn("customer", "Hi, I'm calling about my invoice."),
    Turn("agent", "Sure! What's the number?"),
    Turn("customer", "It's 1234, thanks."),
    Turn("agent", "Got it, one moment please."),
)
VARIANTS = [
    CorpusConversation(turns=TURNS, queue="Billing"),
    CorpusConversation(turns=TURNS, queue="Billing", direction="outbound"),
    CorpusConversation(turns=TURNS, queue="Billing", transfer_to="Support"),
    CorpusConversation(turns=TURNS, queue="Billing", transfer_to="Support", transfer_type="consult"),
    CorpusConversation(turns=TURNS, queue="Support", media="callback"),
    *(
        CorpusConversation(turns=TURNS, queue="Sales", media="message", message_type=t)
        for t in ("sms", "webmessaging", "whatsapp", "open")
    ),
    CorpusConversation(turns=TURNS, queue="Sales", media="chat"),
    CorpusConversation(turns=TURNS, queue="Support", media="email", subject="Order status"),
]


def scenarios() -> Iterator[Scenario]:
    for seed, conversation in enumerate(VARIANTS):
        yield build_scenario(
            conversation, start_ms=1_742_421_594_383, rng=random.Random(seed), organization_id="org-1"
        )


def served(scenario: Scenario) -> Iterator[tuple[str, str, Any]]:
    """(what, SDK model, payload) for everything the emulator sends or serves about it."""
    for frame in scenario.events:
        model = (
            "TranscriptionTopicTranscriptionMessage"
            if frame.topic.endswith(".transcription")
            else "QueueConversationEventTopicConversation"
        )
        yield f"{frame.topic} @{frame.due_ms}", model, frame.body
    for at, _ in scenario.snapshots:
        yield f"conversation @{at}", "Conversation", scenario.conversation_json(at)
        yield f"analytics @{at}", "AnalyticsConversationWithoutAttributes", scenario.analytics_json(at)
    if scenario.media == "message":
        yield "messaging", "MessageConversation", scenario.messaging_conversation_json(scenario.hangup_ms)
        ids = [u.utterance_id for u in scenario.utterances]
        yield "bulk", "TextMessageListing", scenario.messages_json(ids + [f"{i}-typing" for i in ids])
    if scenario.media in ("message", "chat", "email"):
        yield "recordings", "list[Recording]", scenario.recordings_json()


@pytest.mark.parametrize(
    "scenario", list(scenarios()), ids=lambda s: f"{s.media}-{s.direction}-{len(s.queues)}"
)
def test_every_payload_of_the_emulator_is_lossless_through_the_sdk(scenario: Scenario) -> None:
    """The conformance test: nothing the emulator sends is unknown to, or changed by, the SDK."""
    problems = [
        f"{what}: {d}" for what, model, payload in served(scenario) for d in differences(payload, model)
    ]
    assert problems == []


def test_the_emulator_plays_what_real_conversations_look_like() -> None:
    """IVR first, id-only acd queue, empty agent queue, a snapshot per state change, ACW, transfers."""
    inbound, outbound, transferred, consulted, callback, *digital = scenarios()
    first = inbound.snapshots[0][1]["participants"]
    assert [p["purpose"] for p in first] == ["customer", "ivr"]
    last = inbound.snapshots[-1][1]["participants"]
    acd = next(p for p in last if p["purpose"] == "acd")
    agent = next(p for p in last if p["purpose"] == "agent")
    assert acd["conversationRoutingData"]["queue"] == {"id": inbound.queue_id}
    assert agent["conversationRoutingData"]["queue"] == {}
    assert agent["calls"][0]["afterCallWork"]["state"] == "complete" and agent["wrapup"]["code"]
    states = {p["calls"][0]["state"] for _, s in inbound.snapshots for p in s["participants"]}
    assert {"alerting", "connected", "disconnected"} <= states
    assert len(inbound.snapshots) >= 6
    assert "ivr" not in {p["purpose"] for p in outbound.snapshots[-1][1]["participants"]}
    assert len(transferred.queues) == 2
    topics = {f.topic for f in transferred.events if "routing.queues" in f.topic}
    assert len(topics) == 2, "a transferred conversation is seen on both queues' topics"
    rest = transferred.conversation_json(transferred.hangup_ms)
    assert rest is not None
    assert {p.get("queueName") for p in rest["participants"] if p["purpose"] == "acd"} == {
        "Billing",
        "Support",
    }
    assert all(not f.topic.endswith(".transcription") for s in digital for f in s.events)
    disconnects = {
        c.get("disconnectType") for _, s in consulted.snapshots for p in s["participants"] for c in p["calls"]
    }
    assert "transfer.consult" in disconnects
    held = [p for _, s in consulted.snapshots for p in s["participants"] if p["purpose"] == "agent"]
    assert any(p["calls"][0]["held"] for p in held), "the customer waits while the agents consult"
    first = callback.snapshots[0][1]["participants"][0]
    assert first["callbacks"] and first["calls"] == []  # requested, not yet dialled
    last = callback.snapshots[-1][1]["participants"]
    assert all(p["callbacks"] for p in last)
    assert all(bool(p["calls"]) == (p["purpose"] != "acd") for p in last), "the agent called the customer"
    assert any(f.topic.endswith(".transcription") for f in callback.events)


async def test_the_emulators_http_answers_are_lossless_through_the_sdk() -> None:
    """The REST answers as served over HTTP, for a voice and a messaging conversation."""
    corpus = [VARIANTS[0], next(c for c in VARIANTS if c.media == "message")]
    emulator = Emulator(corpus, EmulatorSettings(speed=5000, start_delay_s=0, start_interval_s=1))
    async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
        url = await nursery.start(emulator.run)
        with trio.fail_after(10):
            while emulator.status()["ended"] < 2:  # noqa: ASYNC110 -- the emulator's simulated clock
                await trio.sleep(0.01)
        token = await http.post(
            f"{url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("emulator-client", "emulator-secret"),
        )
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        voice, message = sorted(emulator.scenarios.values(), key=lambda s: s.media != "voice")
        checks = [
            ("GET", f"/api/v2/conversations/{voice.conversation_id}", "Conversation"),
            ("GET", f"/api/v2/conversations/{message.conversation_id}", "Conversation"),
            ("GET", f"/api/v2/conversations/{message.conversation_id}/recordings", "list[Recording]"),
            ("GET", f"/api/v2/conversations/messages/{message.conversation_id}", "MessageConversation"),
            ("GET", "/api/v2/routing/queues", "QueueEntityListing"),
            ("POST", "/api/v2/notifications/channels", "Channel"),
        ]
        channel = (await http.post(f"{url}/api/v2/notifications/channels")).json()["id"]
        topics = [{"id": f"v2.conversations.{voice.conversation_id}.transcription"}]
        details = f"/api/v2/analytics/conversations/{voice.conversation_id}/details"
        link = f"/api/v2/speechandtextanalytics/conversations/{voice.conversation_id}"
        checks += [
            ("GET", f"/api/v2/routing/queues/{voice.queue_id}", "Queue"),
            ("GET", details, "AnalyticsConversationWithoutAttributes"),
            ("GET", f"{link}/communications/{voice.communication_id}/transcripturl", "TranscriptUrl"),
        ]
        for method, path, model in checks:
            response = await http.request(method, f"{url}{path}")
            assert response.status_code == 200, path
            assert differences(response.json(), model) == [], path
        query = {"interval": f"{datetime.fromtimestamp(0, UTC).isoformat()}/{datetime.now(UTC).isoformat()}"}
        answer = await http.post(f"{url}/api/v2/analytics/conversations/details/query", json=query)
        assert differences(answer.json(), "AnalyticsConversationQueryResponse") == []
        await http.post(f"{url}/_emulator/faults", json={"reject_topics": ["v2.conversations."]})
        subscribed = await http.put(
            f"{url}/api/v2/notifications/channels/{channel}/subscriptions?ignoreErrors=true", json=topics
        )
        assert subscribed.json()["entities"][0]["state"] == "Rejected"
        assert differences(subscribed.json(), "ChannelTopicEntityListing") == []
        for kind in ("no_longer_subscribed", "token_revoked", "subscription_changed"):
            frame = emulator.system_frame(kind, channel)
            assert differences(frame["eventBody"], "SystemMessageSystemMessage") == [], kind
            assert isinstance(parse_envelope(json.dumps(frame)).event_body, models.SystemMessage)
        nursery.cancel_scope.cancel()


# --- property-based: optional fields may be absent, null or empty ------------------------


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every optional key path in ``data`` (required keys are kept)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in REQUIRED:
                yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths(value, (*prefix, index))


def altered(data: Any, path: tuple[Any, ...], how: str) -> Any:
    """``data`` with the key at ``path`` dropped, null, or emptied."""
    result = copy.deepcopy(data)
    parent = result
    for step in path:  # an ancestor may be gone already (an earlier change): nothing to do
        present = (
            step in parent if isinstance(parent, dict) else isinstance(parent, list) and step < len(parent)
        )
        if not present:
            return result
        container, parent = parent, parent[step]
    parent, key = container, path[-1]
    if how == "drop":
        del parent[key]
    elif how == "null":
        parent[key] = None
    else:
        parent[key] = {} if isinstance(parent[key], dict) else [] if isinstance(parent[key], list) else None
    return result


def call_frames() -> list[tuple[str, dict[str, Any]]]:
    """The sample call as (topic, eventBody) pairs, in the order Genesys sends them."""
    queue_topic = f"v2.routing.queues.{QUEUE}.conversations"
    transcription = f"v2.conversations.{CONVERSATION}.transcription"
    names = [
        (queue_topic, "queue-conversation-voice-a-ivr"),
        (queue_topic, "queue-conversation-voice-b-queued"),
        (queue_topic, "queue-conversation-voice-c-alerting"),
        (queue_topic, "queue-conversation-voice-d-connected"),
        (transcription, "transcription-opening"),  # status only, at the session's start (§4.2)
        (transcription, "transcription-keepalive"),
        (transcription, "transcription-ongoing"),
        (queue_topic, "queue-conversation-voice-e-held"),
        (queue_topic, "queue-conversation-voice-f-disconnected"),
        (transcription, "transcription-ended"),
        (queue_topic, "queue-conversation-voice-g-wrapup"),
    ]
    return [(topic, sdk_sample(name)) for topic, name in names]


CALL = call_frames()
CALL_PATHS = [(i, path) for i, (_, body) in enumerate(CALL) for path in paths(body)]
Change = tuple[int, tuple[Any, ...], str]


async def indexed_after(changes: list[Change], state_dir: Path) -> TranscriptDocument:
    """Apply ``changes`` to the sample call, run it through the detector, check the outcome."""
    bodies = [body for _, body in CALL]
    for i, path, how in changes:
        bodies[i] = altered(bodies[i], path, how)
    envelopes = [
        parse_envelope(json.dumps({"topicName": topic, "version": "2", "eventBody": body}))
        for (topic, _), body in zip(CALL, bodies, strict=True)
    ]
    documents, stats, _ = await run_detector(envelopes, state_dir, queue_names={QUEUE: "Billing Support"})
    assert [d.conversation_id for d in documents] == [CONVERSATION], changes
    assert stats.messages["malformed"] == 0 and stats.dead_letters == 0, changes
    (document,) = documents
    assert all(u.text for u in document.utterances), changes
    return document


async def test_the_unchanged_call_is_indexed_complete(tmp_path: Path) -> None:
    document = await indexed_after([], tmp_path)
    assert document.complete and document.completion_reason == "ended"
    assert document.queues[0].name == "Billing Support" and len(document.utterances) >= 2


@pytest.mark.parametrize("how", ["drop", "null", "empty"])
async def test_each_optional_field_of_the_sample_call_may_go(how: str, tmp_path: Path) -> None:
    """One change at a time, for every optional key of every payload of the call."""
    for i, path in CALL_PATHS:
        await indexed_after([(i, path, how)], tmp_path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(CALL_PATHS), st.sampled_from(["drop", "null", "empty"])),
        min_size=2,
        max_size=40,
    )
)
async def test_random_sets_of_optional_fields_may_go(
    tmp_path: Path, changes: list[tuple[tuple[int, tuple[Any, ...]], str]]
) -> None:
    """Random sets of optional keys dropped, nulled or emptied across the whole call."""
    await indexed_after([(i, path, how) for (i, path), how in changes], tmp_path)


def our_model(path: Path) -> type[Any]:
    """The worker's model of a sample (lists and listings by their entries)."""
    if path.name == "sta-transcript.json":
        return models.PostCallTranscript
    if path.name.startswith("recordings-"):
        return models.Recording
    ours = model_of(path)[1]
    assert ours is not None
    return ours


def parsed(path: Path, data: Any) -> None:
    """Parse ``data`` (a sample, maybe altered) as the worker does; raises if it cannot."""
    model = our_model(path)
    items = (
        data
        if isinstance(data, list)
        else data.get("entities", [])
        if model is models.ChannelTopic
        else [data]
    )
    for item in items:
        structure(item, model)
    if model is models.Recording:
        utterances_from_recordings("c", [structure(i, models.Recording) for i in items])
    if model is models.TextMessageListing:
        utterances_from_messages("c", structure(data, models.TextMessageListing).entities)
    if model is models.PostCallTranscript:
        utterances_from_post_call(structure(data, models.PostCallTranscript))


ALL_SAMPLES = sorted(SDK_SAMPLES.glob("*.json"))


@pytest.mark.parametrize("path", ALL_SAMPLES, ids=lambda p: p.stem)
def test_each_optional_field_of_every_sample_may_go(path: Path) -> None:
    """Every optional key of every sample dropped, nulled or emptied, one at a time: the
    worker's model still takes it (and digital and post-call text still reads)."""
    data = json.loads(path.read_text())
    for key_path in paths(data):
        for how in ("drop", "null", "empty"):
            parsed(path, altered(data, key_path, how))
