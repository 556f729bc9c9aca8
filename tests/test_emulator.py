"""The emulator's REST surface and scenario, as the reference describes the real service."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import stamina
import trio

from indexer.emulator import CorpusConversation, Emulator, EmulatorSettings, Turn
from indexer.emulator.scenario import asr_text, build_scenario
from indexer.models import TranscriptionMessage
from indexer.serialization import parse_envelope

CORPUS = [
    CorpusConversation(
        turns=(
            Turn("customer", "Hi, I'm calling about my invoice."),
            Turn("agent", "Sure! What's the number?"),
            Turn("customer", "It's 1234, thanks."),
        ),
        queue="Billing",
        direction="outbound",
    )
]


@asynccontextmanager
async def emulator_after_the_call(speed: float = 5000) -> AsyncIterator[tuple[Emulator, httpx.AsyncClient]]:
    """An emulator whose single conversation has ended, and an authenticated client."""
    emulator = Emulator(CORPUS, EmulatorSettings(speed=speed, start_delay_s=0))
    async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
        url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
        (scenario,) = emulator.scenarios.values()
        with trio.fail_after(10):
            while emulator.now_ms() < scenario.hangup_ms + 60_000:  # noqa: ASYNC110 -- simulated clock
                await trio.sleep(0.01)
        token = (
            await http.post(
                f"{url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("emulator-client", "emulator-secret"),
            )
        ).json()
        http.base_url = httpx.URL(url)
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield emulator, http
        nursery.cancel_scope.cancel()


def test_asr_text_is_lower_case_without_sentence_punctuation() -> None:
    """Raw transcripts look like recogniser output; emails and numbers keep their inner dots."""
    assert asr_text("Hi, I'm Jane! Mail jane.doe@example.com. Call (412)623-3079?") == (
        "hi i'm jane mail jane.doe@example.com call 412 623-3079"
    )


async def test_token_errors_and_unauthenticated_calls() -> None:
    """Bad credentials get invalid_client; API calls without a valid bearer get 401."""
    async with emulator_after_the_call() as (_, http):
        bad = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=("emulator-client", "x")
        )
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
        anonymous = await http.get("/api/v2/routing/queues", headers={"Authorization": "Bearer nope"})
        assert anonymous.status_code == 401 and anonymous.json()["status"] == 401


async def test_conversation_and_analytics_views_after_hang_up() -> None:
    """GET conversation, analytics details and the details query show the ended call."""
    async with emulator_after_the_call() as (emulator, http):
        (scenario,) = emulator.scenarios.values()
        conversation = (await http.get(f"/api/v2/conversations/{scenario.conversation_id}")).json()
        assert conversation["endTime"] and conversation["startTime"]
        purposes = [p["purpose"] for p in conversation["participants"]]
        assert purposes == ["customer", "agent"]  # an outbound call: no IVR, no acd leg
        assert all(p["endTime"] for p in conversation["participants"])
        details = (
            await http.get(f"/api/v2/analytics/conversations/{scenario.conversation_id}/details")
        ).json()
        assert details["conversationEnd"] and details["originatingDirection"] == "outbound"
        start = datetime.fromtimestamp(scenario.start_ms / 1000, UTC)
        interval = f"{(start - timedelta(hours=1)).isoformat()}/{(start + timedelta(hours=1)).isoformat()}"
        query = {
            "interval": interval,
            "conversationFilters": [
                {"type": "and", "predicates": [{"dimension": "conversationEnd", "operator": "exists"}]}
            ],
        }
        found = (await http.post("/api/v2/analytics/conversations/details/query", json=query)).json()
        assert found["totalHits"] == 1
        assert found["conversations"][0]["conversationId"] == scenario.conversation_id
        missing = await http.get("/api/v2/conversations/00000000-0000-4000-8000-000000000000")
        assert missing.status_code == 404


async def test_transcript_url_is_pre_signed() -> None:
    """transcripturl gives a URL fetched without the bearer; a tampered signature is refused."""
    async with emulator_after_the_call() as (emulator, http):
        (scenario,) = emulator.scenarios.values()
        path = (
            f"/api/v2/speechandtextanalytics/conversations/{scenario.conversation_id}"
            f"/communications/{scenario.communication_id}/transcripturl"
        )
        url = (await http.get(path)).json()["url"]
        async with httpx.AsyncClient() as anonymous:
            transcript = (await anonymous.get(url)).json()
            tampered = await anonymous.get(url[:-4] + "0000")
        assert tampered.status_code == 403
        phrases = transcript["transcripts"][0]["phrases"]
        assert [p["decoratedText"] for p in phrases] == [t.text for t in CORPUS[0].turns]
        assert [p["participantPurpose"] for p in phrases] == ["external", "internal", "external"]
        assert phrases[0]["text"] == "hi i'm calling about my invoice"


async def test_public_url_is_the_base_of_every_url_handed_out() -> None:
    """Behind a container network the emulator hands out its public URL, not its bind address."""
    settings = EmulatorSettings(speed=5000, start_delay_s=0, public_url="http://emulator.test:8080/")
    emulator = Emulator(CORPUS, settings)
    async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
        bound = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
        assert bound.startswith("http://127.0.0.1:")
        token = await http.post(
            f"{bound}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("emulator-client", "emulator-secret"),
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        channel = (await http.post(f"{bound}/api/v2/notifications/channels", headers=headers)).json()
        assert channel["connectUri"] == f"ws://emulator.test:8080/channels/{channel['id']}"
        nursery.cancel_scope.cancel()


async def test_subscription_limit_is_enforced() -> None:
    """More than 1,000 topics on a channel is a 400 (reference §3.8)."""
    async with emulator_after_the_call() as (_, http):
        channel = (await http.post("/api/v2/notifications/channels")).json()
        path = f"/api/v2/notifications/channels/{channel['id']}/subscriptions"
        ok = await http.put(path, json=[{"id": f"v2.conversations.c{i}.transcription"} for i in range(1000)])
        assert ok.status_code == 200 and len(ok.json()["entities"]) == 1000
        over = await http.post(path, json=[{"id": "v2.conversations.one-more.transcription"}])
        assert over.status_code == 400


def test_scenario_groups_delays_and_ends_transcripts() -> None:
    """Keep-alive first, utterances grouped and delivered after they end, SESSION_ENDED last."""
    scenario = build_scenario(
        CORPUS[0], start_ms=1_700_000_000_000, rng=random.Random(1), organization_id="org"
    )
    parsed = [(frame.due_ms, parse_envelope(frame.text)) for frame in scenario.events]
    messages = [
        (due, envelope.event_body)
        for due, envelope in parsed
        if isinstance(envelope.event_body, TranscriptionMessage)
    ]
    _, first = messages[0]
    assert first.transcripts == () and first.status is not None and first.status.status == "SESSION_ONGOING"
    last_due, last = messages[-1]
    assert last.status is not None and last.status.status == "SESSION_ENDED" and last_due > scenario.hangup_ms
    for due, body in messages:
        for result in body.transcripts:
            alt = result.alternatives[0]
            assert due >= body.session_start_time_ms + alt.offset_ms + alt.duration_ms  # type: ignore[operator]
            assert alt.transcript == " ".join(w.word for w in alt.words)
    delivered = [r.utterance_id for _, body in messages for r in body.transcripts]
    assert delivered == [u.utterance_id for u in scenario.utterances]


async def test_rate_limit_fault_is_waited_out_by_the_client() -> None:
    """POST /_emulator/faults rate_limit_count: 429 with Retry-After, which the client honours."""
    from indexer.config import GenesysSettings
    from indexer.genesys import GenesysClient

    async with emulator_after_the_call() as (emulator, http):
        await http.post("/_emulator/faults", json={"rate_limit_count": 2, "retry_after_s": 1})
        client = GenesysClient(http, GenesysSettings(emulator.base_url, emulator.base_url, "emulator-client",
                                                     "emulator-secret", ("Billing",)))  # fmt: skip
        start = trio.current_time()
        assert await client.resolve_queues(["Billing"])
        assert trio.current_time() - start >= 2
        assert emulator.faults.rate_limit_count == 0


async def test_half_open_fault_leaves_sockets_open_but_lost() -> None:
    """POST /_emulator/faults half_open: the open socket gets nothing more, not even a pong."""
    from trio_websocket import open_websocket_url

    async with emulator_after_the_call() as (emulator, http):
        channel = (await http.post("/api/v2/notifications/channels")).json()
        await http.put(f"/api/v2/notifications/channels/{channel['id']}/subscriptions", json=[{"id": "t"}])
        async with open_websocket_url(channel["connectUri"]) as socket:
            with trio.fail_after(10):
                while emulator.channels[channel["id"]].connection is None:  # noqa: ASYNC110 -- server state
                    await trio.sleep(0.01)
            emulator.publish("delivered", "t")
            assert await socket.get_message() == "delivered"
            await http.post("/_emulator/faults", json={"half_open": True})
            emulator.publish("lost", "t")
            await socket.send_message('{"message": "ping"}')
            with trio.move_on_after(0.5) as waited:  # nothing comes: bounded wait for an absence
                await socket.get_message()
            assert waited.cancelled_caught and emulator.pings == 0
            assert not socket.closed  # open, as a half-open connection looks to its client


async def test_token_expiry_fault_makes_the_client_renew() -> None:
    """Revoked tokens answer 401; the client fetches a new token and the call succeeds."""
    from indexer.config import GenesysSettings
    from indexer.genesys import GenesysClient

    async with emulator_after_the_call() as (emulator, http):
        client = GenesysClient(http, GenesysSettings(emulator.base_url, emulator.base_url, "emulator-client",
                                                     "emulator-secret", ("Billing",)))  # fmt: skip
        channel = await client.create_channel()
        await http.post("/_emulator/faults", json={"expire_tokens": True})
        assert await client.channel_exists(channel.id)
        assert client.token_renewals == 2


async def test_a_21st_channel_evicts_the_oldest() -> None:
    """20 channels per client: creating a 21st removes the oldest one without a socket (§3.8)."""
    async with emulator_after_the_call() as (_, http):
        ids = [(await http.post("/api/v2/notifications/channels")).json()["id"] for _ in range(21)]
        assert (await http.head(f"/api/v2/notifications/channels/{ids[0]}")).status_code == 404
        assert (await http.head(f"/api/v2/notifications/channels/{ids[1]}")).status_code == 200
        assert (await http.head(f"/api/v2/notifications/channels/{ids[20]}")).status_code == 200


def test_late_utterance_fault_moves_the_last_message_after_session_ended() -> None:
    """With the fault, the last transcript message is due after SESSION_ENDED."""
    scenario = build_scenario(
        CORPUS[0],
        start_ms=1_700_000_000_000,
        rng=random.Random(1),
        organization_id="org",
        late_utterance=True,
    )
    bodies = [(frame.due_ms, parse_envelope(frame.text).event_body) for frame in scenario.events]
    statuses = [
        (due, body.status.status, bool(body.transcripts))
        for due, body in bodies
        if isinstance(body, TranscriptionMessage) and body.status is not None
    ]
    ended_due = next(due for due, status, _ in statuses if status == "SESSION_ENDED")
    assert any(due > ended_due and has_transcripts for due, _, has_transcripts in statuses)


async def test_the_details_query_is_answered_as_documented_and_the_client_copes() -> None:
    """Whole days, repeated rows on shifting pages, an end after now trimmed (§6.4): the
    client keeps each conversation once, and only those that started in its interval."""
    from indexer.config import GenesysSettings
    from indexer.genesys import GenesysClient

    turns = (Turn("customer", "Hello there."), Turn("agent", "Hi."))
    corpus = [CorpusConversation(turns=turns, queue="Billing") for _ in range(230)]
    emulator = Emulator(corpus, EmulatorSettings(speed=20_000, start_delay_s=0, start_interval_s=5))
    async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
        url = await nursery.start(emulator.run)
        scenarios = sorted(emulator.scenarios.values(), key=lambda s: s.start_ms)
        with trio.fail_after(20):
            while emulator.now_ms() < scenarios[-1].hangup_ms + 60_000:  # noqa: ASYNC110 -- simulated clock
                await trio.sleep(0.01)
        settings = GenesysSettings(url, url, "emulator-client", "emulator-secret", ("Billing",))
        client = GenesysClient(http, settings)

        def iso(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).isoformat()

        # The interval: the 11th to the 200th start.
        start, end = scenarios[10].start_ms, scenarios[200].start_ms
        raw = (
            await http.post(
                f"{url}/api/v2/analytics/conversations/details/query",
                json={
                    "interval": f"{iso(start)}/{iso(emulator.now_ms() + 3_600_000)}",
                    "paging": {"pageSize": 100, "pageNumber": 2},
                },
                headers={"Authorization": f"Bearer {await client.access_token()}"},
            )
        ).json()
        assert raw["totalHits"] >= 220  # the whole day, not only the interval
        assert len(raw["conversations"]) == 100
        rows = await client.ended_conversations(iso(start), iso(end), [scenarios[0].queue_id])
        assert {r.conversation_id for r in rows} == {s.conversation_id for s in scenarios[10:200]}
        # An interval reaching now: trimmed, and its pages repeat rows.
        later = emulator.now_ms() + 3_600_000
        rows = await client.ended_conversations(iso(start), iso(later), [scenarios[0].queue_id])
        ids = [r.conversation_id for r in rows]
        assert len(ids) == len(set(ids))
        assert set(ids) == {s.conversation_id for s in scenarios[10:]}
        nursery.cancel_scope.cancel()


async def test_a_429_after_the_retries_is_an_api_error() -> None:
    """Once its retries are spent, a call still answered 429 (or 5xx) raises a GenesysError
    with the status, which callers catch as an API error and try again later (it escaped
    them, and stopped the task)."""
    from indexer.config import GenesysSettings
    from indexer.errors import GenesysError
    from indexer.genesys import API_ERRORS, GenesysClient

    async with emulator_after_the_call() as (emulator, http):
        client = GenesysClient(http, GenesysSettings(emulator.base_url, emulator.base_url, "emulator-client",
                                                     "emulator-secret", ("Billing",)))  # fmt: skip
        await client.access_token()
        await http.post("/_emulator/faults", json={"rate_limit_count": 1, "retry_after_s": 0})
        with stamina.set_testing(True, attempts=1), pytest.raises(GenesysError) as raised:
            await client.request("GET", "/api/v2/routing/queues")
        assert raised.value.status == 429 and isinstance(raised.value, API_ERRORS)
        assert "429, still after retrying" in str(raised.value)
