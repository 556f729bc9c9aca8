"""Gap recovery: what the live stream missed comes from the analytics API and post-call transcripts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
from osmem_server import OsmemServer

from indexer.demo import build_demo_corpus
from indexer.emulator import Emulator, EmulatorSettings
from indexer.emulator.scenario import build_scenario
from indexer.recovery import utterances_from_post_call
from indexer.stats import Statistics
from tests.harness import Arrivals, indexed_sources, live_config, start_worker

# Cancelling the worker at the end of a test can interrupt recovery's HTTP requests, leaving
# their sockets to the garbage collector (see tests/test_stream.py for the fd measurement).
pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def test_post_call_transcript_becomes_utterances() -> None:
    """Phrases map to utterances: speaker from internal/external, decorated text, spoken order."""
    corpus, _ = build_demo_corpus(1, seed=1, pii_share=0.0)
    scenario = build_scenario(
        corpus[0], start_ms=1_700_000_000_000, rng=random.Random(2), organization_id="o"
    )
    utterances = utterances_from_post_call(scenario.transcript_json())
    assert [u.text for u in utterances] == [u.text for u in scenario.utterances]
    assert [u.speaker for u in utterances] == [u.speaker for u in scenario.utterances]
    assert [w.word for w in utterances[0].words] == scenario.utterances[0].raw.split()
    assert all(u.communication_id == scenario.communication_id for u in utterances)


async def test_conversations_before_the_worker_started_are_recovered(
    osmem: OsmemServer, tmp_path: Path
) -> None:
    """Calls that ended before the worker started are found by the look-back and indexed whole."""
    count = 6
    corpus, _ = build_demo_corpus(count, seed=4, pii_share=0.0, offset=1000)
    emulator = Emulator(corpus, EmulatorSettings(speed=200, start_interval_s=5, start_delay_s=0))
    arrivals = Arrivals(expected=count)
    stats = Statistics()
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
            with trio.fail_after(30):
                while emulator.status()["ended"] < count:  # noqa: ASYNC110 -- the emulator's simulated clock
                    await trio.sleep(0.05)
            await trio.sleep(0.2)
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path)
            start_worker(nursery, config, stats=stats, arrivals=arrivals)
            with trio.fail_after(60):
                await arrivals.done.wait()
            nursery.cancel_scope.cancel()
        documents = indexed_sources(index.url)
    print(f"\nrecovered at start-up: {stats.recovered['missed']} of {count}")
    assert stats.recovered["missed"] == count
    for scenario in emulator.scenarios.values():
        document = documents[scenario.conversation_id]
        assert document["source"] == "post_call"
        assert [u["text"] for u in document["utterances"]] == [u.text for u in scenario.utterances]
        assert [p["purpose"] for p in document["participants"]] == ["customer", "acd", "agent"]


async def test_socket_drops_and_channel_expiry_lose_no_utterance(osmem: OsmemServer, tmp_path: Path) -> None:
    """The server drops sockets and deletes channels mid-call; every transcript is still whole."""
    count = 10
    corpus, _ = build_demo_corpus(count, seed=8, pii_share=0.0, offset=2000)
    emulator = Emulator(corpus, EmulatorSettings(speed=25, start_interval_s=10, start_delay_s=0.5))
    arrivals = Arrivals(expected=count)
    stats = Statistics()
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path)
            start_worker(nursery, config, stats=stats, arrivals=arrivals)
            for fault in ("drop", "expire", "drop"):
                await trio.sleep(1.2)
                if fault == "drop":
                    emulator.drop_connections()
                else:
                    for channel_id in list(emulator.channels):
                        emulator.expire_channel(channel_id)
            with trio.fail_after(90):
                await arrivals.done.wait()
            nursery.cancel_scope.cancel()
        documents = indexed_sources(index.url)
    print(f"\nfaults: {stats.reconnects} reconnects, recovered {dict(stats.recovered)}")
    assert stats.reconnects >= 3
    for scenario in emulator.scenarios.values():
        document = documents[scenario.conversation_id]
        assert [u["text"] for u in document["utterances"]] == [u.text for u in scenario.utterances], document[
            "source"
        ]
