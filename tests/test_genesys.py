"""The Genesys Cloud client against the emulator over loopback, and its retry policy."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing

from indexer.config import GenesysSettings
from indexer.emulator import CorpusConversation, Emulator, EmulatorSettings, Turn
from indexer.errors import AuthenticationError, ConfigError
from indexer.genesys import GenesysClient
from indexer.topics import transcription_topic

CORPUS = [
    CorpusConversation(turns=(Turn("customer", "hello"),), queue="Billing"),
    CorpusConversation(turns=(Turn("customer", "hi"),), queue="Support"),
]


@pytest.fixture
async def emulator(nursery: trio.Nursery) -> Emulator:
    """An emulator on loopback whose conversations have not started yet."""
    emulator = Emulator(CORPUS, EmulatorSettings(speed=1, start_delay_s=3600))
    await nursery.start(lambda task_status: emulator.run(task_status=task_status))
    return emulator


def _settings(emulator: Emulator, secret: str = "emulator-secret") -> GenesysSettings:
    return GenesysSettings(
        api_base_url=emulator.base_url,
        login_base_url=emulator.base_url,
        client_id="emulator-client",
        client_secret=secret,
        queues=("Billing",),
    )


async def test_token_channel_and_subscriptions(emulator: Emulator) -> None:
    """Token, channel, POST/PUT/GET subscriptions and HEAD behave as in reference §2-3."""
    async with httpx.AsyncClient() as http:
        client = GenesysClient(http, _settings(emulator))
        channel = await client.create_channel()
        assert channel.connect_uri.endswith(f"/channels/{channel.id}")
        assert await client.channel_exists(channel.id)
        assert not await client.channel_exists("streaming-0-gone")
        assert await client.replace_subscriptions(channel.id, ["a.topic"]) == []  # an acknowledgement
        assert await client.add_subscriptions(channel.id, [transcription_topic("c1")]) == []
        assert [t.id for t in await client.get_subscriptions(channel.id)] == [
            "a.topic",
            transcription_topic("c1"),
        ]
        await client.replace_subscriptions(channel.id, [])
        assert await client.get_subscriptions(channel.id) == []
        assert client.token_renewals == 1


async def test_subscription_answers_return_the_rejected_topics_only(emulator: Emulator) -> None:
    """A change's answer lists every topic of the channel; the client returns those the
    service did not permit, structured, and nothing else."""
    emulator.faults.reject_topics = ["v2.users."]
    async with httpx.AsyncClient() as http:
        client = GenesysClient(http, _settings(emulator))
        channel = await client.create_channel()
        topics = [transcription_topic(f"c{i}") for i in range(900)]
        assert await client.replace_subscriptions(channel.id, topics) == []
        (rejected,) = await client.add_subscriptions(channel.id, ["v2.users.u1.conversations"])
        assert rejected.id == "v2.users.u1.conversations" and rejected.state == "Rejected"
        assert len(await client.get_subscriptions(channel.id)) == 900  # a rejected topic is not kept


async def test_queue_names_and_ids_resolve(emulator: Emulator) -> None:
    """Queue names resolve by exact name; ids resolve by id; an unknown queue is a setting error."""
    async with httpx.AsyncClient() as http:
        client = GenesysClient(http, _settings(emulator))
        resolved = await client.resolve_queues(["Billing"])
        (queue_id,) = resolved
        assert resolved == {queue_id: "Billing"}
        assert await client.resolve_queues([queue_id]) == resolved
        with pytest.raises(ConfigError, match="GENESYS_QUEUES: no queue named 'Nope'"):
            await client.resolve_queues(["Nope"])


async def test_bad_credentials_name_the_settings(emulator: Emulator) -> None:
    """invalid_client becomes an AuthenticationError naming the settings, not the secret."""
    async with httpx.AsyncClient() as http:
        client = GenesysClient(http, _settings(emulator, secret="wrong-secret"))
        with pytest.raises(AuthenticationError) as caught:
            await client.create_channel()
    assert "GENESYS_CLIENT_SECRET" in str(caught.value) and "invalid_client" in str(caught.value)
    assert "wrong-secret" not in str(caught.value)


async def test_429_waits_for_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    """A 429 with Retry-After is retried after that many seconds (reference §2.4)."""
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        calls.append(trio.current_time())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"status": 429})
        return httpx.Response(200, json={"entities": []})

    settings = GenesysSettings("http://api", "http://login", "id", "secret", ("Q",))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        await GenesysClient(http, settings).get_subscriptions("ch")
    assert len(calls) == 2
    assert calls[1] - calls[0] == pytest.approx(7, abs=0.01)


async def test_token_is_renewed_before_it_expires(autojump_clock: trio.testing.MockClock) -> None:
    """A token is reused while fresh and renewed before expires_in runs out."""
    tokens = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal tokens
        if request.url.path == "/oauth/token":
            tokens += 1
            return httpx.Response(200, json={"access_token": f"t{tokens}", "expires_in": 600})
        assert request.headers["Authorization"] == f"Bearer t{tokens}"
        return httpx.Response(200, json={"entities": []})

    settings = GenesysSettings("http://api", "http://login", "id", "secret", ("Q",))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = GenesysClient(http, settings)
        await client.get_subscriptions("ch")
        await trio.sleep(400)
        await client.get_subscriptions("ch")
        assert tokens == 1
        await trio.sleep(150)  # 550 s: inside the renewal margin of a 600 s token
        await client.get_subscriptions("ch")
        assert tokens == 2
