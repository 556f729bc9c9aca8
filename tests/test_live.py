"""The live view: redacted utterances as they arrive, to plugins' listeners and ``watch``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import attrs
import pytest
import trio
from osmem_server import OsmemServer

from indexer.config import Config
from indexer.demo import build_demo_corpus, worker_environment
from indexer.emulator import Emulator, EmulatorSettings
from indexer.emulator.scenario import asr_text
from indexer.hookspecs import hookimpl
from indexer.live import LiveFeed, LiveUtterance, format_event, mask_numbers
from indexer.stats import Statistics
from tests.harness import Arrivals, live_config, start_worker
from tests.test_run_command import COMMAND, emulate, stop, wait_for

pytestmark = pytest.mark.e2e


@attrs.define
class Collector:
    """A plugin contributing one live listener that keeps what it is told."""

    heard: list[LiveUtterance] = attrs.field(factory=list)
    threads: set[str] = attrs.field(factory=set)
    name: str = "collector"

    @hookimpl
    def transcript_indexer_live_listeners(self, config: Config) -> list[Collector]:
        return [self]

    def on_utterance(self, utterance: LiveUtterance) -> None:
        self.threads.add(threading.current_thread().name)
        self.heard.append(utterance)


def test_numbers_are_masked_written_or_spoken() -> None:
    assert mask_numbers("my card is 4111 1111 and") == "my card is [NUMBER] and"
    assert mask_numbers("it's four one one one one") == "it's [NUMBER]"
    assert mask_numbers("two cats and 12 dogs at one o'clock") == "two cats and 12 dogs at one o'clock"


def test_a_terminal_line_marks_utterances_not_shown() -> None:
    shown: dict[str, int] = {}
    event = {
        "conversation_id": "c1",
        "sequence": 4,
        "spoken_at": "2026-12-02T10:01:02+00:00",
        "offset_ms": 0,
        "queues": ["Billing"],
        "media_type": "voice",
        "speaker": "customer",
        "text": "hello",
    }
    assert (
        format_event(event, shown) == "10:01:02  c1  Billing  voice  customer: hello"
    )  # joined late: no mark
    assert (
        format_event({**event, "sequence": 7}, shown)
        .splitlines()[0]
        .endswith("c1  ... 2 utterances not shown")
    )


async def test_a_slow_redaction_never_blocks_the_offer_and_gaps_are_counted() -> None:
    """The detector offers without waiting; past the buffer, utterances are dropped and
    counted, and a failed redaction shows nothing (fail closed)."""
    stats = Statistics()
    release = trio.Event()

    async def stuck(context: object, speaker: str, text: str) -> str:
        await release.wait()
        raise RuntimeError("a rule raised")

    feed = LiveFeed([Collector()], stuck, stats)
    for n in range(1_005):
        feed.offer(LiveUtterance("c1", 0, f"u{n}", "customer", "secret", "voice", (), 0))
    assert stats.live_dropped >= 4
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.run)
        release.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert stats.live_utterances == 0 and stats.live_dropped == 1_005


async def test_listeners_hear_redacted_utterances_in_order(osmem: OsmemServer, tmp_path: Path) -> None:
    """A plugin's listener hears every utterance of every call while it happens, redacted
    (no injected PII, spoken or written, no digit runs), with sequence numbers 1, 2, … per
    conversation, in a worker thread; digital conversations' messages once indexed."""
    count = 6
    corpus, injected = build_demo_corpus(count, seed=21, pii_share=1.0, digital_share=0.3, offset=5200)
    emulator = Emulator(
        corpus, EmulatorSettings(speed=50, start_interval_s=8, start_delay_s=0.5, wait_for_subscriber=True)
    )
    collector = Collector()
    arrivals = Arrivals(expected=count)
    with osmem.clone() as index:
        async with trio.open_nursery() as nursery:
            base_url = await nursery.start(lambda task_status: emulator.run(task_status=task_status))
            config = live_config(base_url, corpus, {"url": index.url}, tmp_path, grace_period_s=1.0)
            start_worker(nursery, config, stats=Statistics(), arrivals=arrivals, extra=[collector])
            with trio.fail_after(90):
                await arrivals.done.wait()
                # a digital conversation's messages reach the listener just after indexing
                while len({u.conversation_id for u in collector.heard}) < count:  # noqa: ASYNC110 -- no event to wait on
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    by_conversation: dict[str, list[LiveUtterance]] = {}
    for utterance in collector.heard:
        by_conversation.setdefault(utterance.conversation_id, []).append(utterance)
    assert len(by_conversation) == count
    for heard in by_conversation.values():
        assert [u.sequence for u in heard] == list(range(1, len(heard) + 1))
    spoken = "\n".join(u.text for u in collector.heard).lower()
    for value in (p.value.lower() for p in injected):
        assert value not in spoken and asr_text(value) not in spoken
    assert {u.media_type for u in collector.heard} >= {"voice"}
    assert len({u.media_type for u in collector.heard}) >= 2, "digital messages are heard too"
    assert "MainThread" not in collector.threads
    assert {u.speaker for u in collector.heard} <= {"agent", "customer"}


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_watch_follows_calls_as_they_happen(osmem: OsmemServer, tmp_path: Path) -> None:
    """``watch`` against a running worker prints redacted utterances as they come; without a
    worker it says so and exits 3."""
    state = tmp_path / "state"
    alone = subprocess.run(
        [*COMMAND, "watch"],
        env={**os.environ, "INDEXER_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
    )
    assert alone.returncode == 3 and "no worker runs with the state directory" in alone.stderr
    corpus, injected = build_demo_corpus(3, seed=22, pii_share=1.0, digital_share=0.0, offset=5300)
    flags = ("--speed", "20", "--interval", "20", "--start-delay", "4", "--wait-for-subscriber")
    with emulate(corpus, tmp_path, *flags) as ready, osmem.clone() as index:
        env = {
            **worker_environment(ready, opensearch_url=index.url, state_dir=state),
            "INDEXER_LOG_LEVEL": "WARNING",
        }
        worker = subprocess.Popen([*COMMAND, "run"], env=env, text=True)
        watcher = None
        try:
            wait_for(lambda: '"http": "http' in _read(state / "status.json"), 30)
            watcher = subprocess.Popen(
                [*COMMAND, "watch", "--json"], env=env, stdout=subprocess.PIPE, text=True
            )
            assert watcher.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 60
            while len(lines) < 6 and time.monotonic() < deadline:
                lines.append(watcher.stdout.readline())
            watcher.send_signal(signal.SIGINT)
            watcher.wait(timeout=10)
        finally:
            stop(watcher, worker)
            if watcher is not None and watcher.stdout is not None:
                watcher.stdout.close()
    events = [json.loads(line) for line in lines if line.strip()]
    assert len(events) == 6
    assert all(e["conversation_id"] and e["speaker"] in ("agent", "customer") for e in events)
    text = "\n".join(e["text"] for e in events).lower()
    assert not any(p.value.lower() in text or asr_text(p.value) in text for p in injected)
