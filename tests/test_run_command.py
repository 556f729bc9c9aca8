"""``transcript-indexer run`` as operators run it, against ``transcript-indexer emulate``.

The corpus is conversations no other test or the demo uses (the tail of chitchat-dataset),
played at ``--speed 50``; the worker drains on SIGTERM and exits 0.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opensearchpy import OpenSearch, helpers
from osmem_server import OsmemServer

from indexer.demo import build_demo_corpus, find_leaks, worker_environment
from indexer.emulator import dump_corpus
from indexer.emulator.scenario import asr_text

pytestmark = pytest.mark.e2e

COUNT = 30
COMMAND = [sys.executable, "-m", "indexer"]


def test_run_indexes_an_unseen_corpus_and_drains_on_sigterm(osmem: OsmemServer, tmp_path: Path) -> None:
    """Every conversation indexed with PII masked; SIGTERM drains and exits 0."""
    corpus, injected = build_demo_corpus(COUNT, seed=2024, pii_share=0.6, offset=7168 - COUNT)
    corpus_path = tmp_path / "corpus.ndjson"
    dump_corpus(corpus, corpus_path)
    emulator = subprocess.Popen(
        [*COMMAND, "emulate", "--corpus", str(corpus_path), "--speed", "50", "--interval", "6"],
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = None
    try:
        assert emulator.stdout is not None
        ready = json.loads(emulator.stdout.readline())
        with osmem.clone() as index:
            env = worker_environment(ready, opensearch_url=index.url, state_dir=tmp_path / "state")
            config = tmp_path / "indexer.toml"
            config.write_text("[completion]\ngrace_period_s = 1.0\n")
            worker = subprocess.Popen(
                [*COMMAND, "run", "--config", str(config)], env=env, stderr=subprocess.PIPE, text=True
            )
            client = OpenSearch(hosts=[index.url])
            deadline = time.monotonic() + 120
            count = 0
            while count < COUNT and time.monotonic() < deadline and worker.poll() is None:
                time.sleep(0.5)
                if client.indices.exists_alias(name="transcripts"):
                    client.indices.refresh(index="transcripts")
                    count = client.count(index="transcripts")["count"]
            worker.send_signal(signal.SIGTERM)
            _, log = worker.communicate(timeout=60)
            assert worker.returncode == 0, log[-2000:]
            print(f"\nrun command: {COUNT} conversations played, {count} indexed")
            assert count == COUNT
            documents = [hit["_source"] for hit in helpers.scan(client, index="transcripts")]
            assert all(d["complete"] for d in documents)
            assert find_leaks(client, "transcripts", injected) == []
            assert "received SIGTERM, draining" in log
            for value in (p.value for p in injected):
                assert value not in log, "a PII value reached the log"
            assert ready["client_secret"] not in log
    finally:
        for process in (worker, emulator):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        assert emulator.stdout is not None
        emulator.stdout.close()


def test_sigkill_with_opensearch_down_loses_nothing(tmp_path: Path) -> None:
    """Transcripts finished while OpenSearch is down survive SIGKILL and arrive after a restart."""
    count = 8
    corpus, _ = build_demo_corpus(count, seed=9, pii_share=0.0, offset=5000)
    corpus_path = tmp_path / "corpus.ndjson"
    dump_corpus(corpus, corpus_path)
    node = OsmemServer.start(japanese=False)
    emulator = subprocess.Popen(
        # Start late enough for the worker to be subscribed: what is published before the
        # socket opens is lost (no durability on the WebSocket; gap recovery is not built yet).
        [
            *COMMAND,
            "emulate",
            "--corpus",
            str(corpus_path),
            "--speed",
            "50",
            "--interval",
            "6",
            "--start-delay",
            "6",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers: list[subprocess.Popen[str]] = []
    outbox = tmp_path / "state" / "outbox"
    try:
        assert emulator.stdout is not None
        ready = json.loads(emulator.stdout.readline())
        env = worker_environment(ready, opensearch_url=node.url, state_dir=tmp_path / "state")
        config = tmp_path / "indexer.toml"
        config.write_text(
            "[completion]\ngrace_period_s = 0.5\n"
            "[plugins.opensearch]\ntimeout_s = 0.5\nretry_timeout_s = 1.0\n"
        )
        node.process.send_signal(signal.SIGSTOP)
        workers.append(subprocess.Popen([*COMMAND, "run", "--config", str(config)], env=env, text=True))
        deadline = time.monotonic() + 90
        while len(list(outbox.glob("*.json"))) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(list(outbox.glob("*.json"))) == count, "every finished transcript waits in the outbox"
        workers[0].kill()
        workers[0].wait()
        node.process.send_signal(signal.SIGCONT)
        workers.append(subprocess.Popen([*COMMAND, "run", "--config", str(config)], env=env, text=True))
        client = OpenSearch(hosts=[node.url])
        indexed = 0
        deadline = time.monotonic() + 90
        while indexed < count and time.monotonic() < deadline:
            time.sleep(0.3)
            if client.indices.exists_alias(name="transcripts"):
                client.indices.refresh(index="transcripts")
                indexed = client.count(index="transcripts")["count"]
        print(f"\nafter SIGKILL and restart: {indexed} of {count} indexed")
        assert indexed == count
        while list(outbox.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(outbox.glob("*.json")) == []
    finally:
        node.process.send_signal(signal.SIGCONT)
        for process in [*workers, emulator]:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert emulator.stdout is not None
        emulator.stdout.close()
        node.close()
        if node.process.stdout is not None:
            node.process.stdout.close()


def test_sigkill_mid_call_resumes_and_recovers_the_gap(osmem: OsmemServer, tmp_path: Path) -> None:
    """After a SIGKILL mid-call and a restart, every conversation is indexed whole.

    What arrived before the kill is resumed from the journal; what Genesys sent while the
    worker was down comes from the post-call transcript (gap recovery).
    """
    count = 6
    corpus, _ = build_demo_corpus(count, seed=3, pii_share=0.0, offset=6000)
    corpus_path = tmp_path / "corpus.ndjson"
    dump_corpus(corpus, corpus_path)
    emulator = subprocess.Popen(
        [
            *COMMAND,
            "emulate",
            "--corpus",
            str(corpus_path),
            "--speed",
            "20",
            "--interval",
            "20",
            "--start-delay",
            "5",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers: list[subprocess.Popen[str]] = []
    journal = tmp_path / "state" / "journal.ndjson"
    try:
        assert emulator.stdout is not None
        ready = json.loads(emulator.stdout.readline())
        with osmem.clone() as index:
            env = worker_environment(ready, opensearch_url=index.url, state_dir=tmp_path / "state")
            config = tmp_path / "indexer.toml"
            config.write_text("[completion]\ngrace_period_s = 0.5\n")
            workers.append(subprocess.Popen([*COMMAND, "run", "--config", str(config)], env=env, text=True))

            def utterances_in_journal() -> set[str]:
                if not journal.exists():
                    return set()
                found = set()
                for line in journal.read_text().splitlines():
                    frame = json.loads(json.loads(line).get("f") or "{}")
                    for result in frame.get("eventBody", {}).get("transcripts", []):
                        found.add(result["alternatives"][0]["decoratedTranscript"])
                return found

            deadline = time.monotonic() + 60
            while len(utterances_in_journal()) < 4 and time.monotonic() < deadline:
                time.sleep(0.1)
            workers[0].kill()
            workers[0].wait()
            before_kill = utterances_in_journal()
            assert before_kill, "the worker received utterances before it was killed"
            workers.append(subprocess.Popen([*COMMAND, "run", "--config", str(config)], env=env, text=True))
            client = OpenSearch(hosts=[index.url])
            indexed: list[dict[str, object]] = []
            deadline = time.monotonic() + 90
            while len(indexed) < count and time.monotonic() < deadline:
                time.sleep(0.5)
                if client.indices.exists_alias(name="transcripts"):
                    client.indices.refresh(index="transcripts")
                    indexed = [hit["_source"] for hit in helpers.scan(client, index="transcripts")]
            in_index = {u["text"] for d in indexed for u in d["utterances"]}  # type: ignore[attr-defined]
            print(
                f"\njournal: {len(before_kill)} utterances received before SIGKILL, all indexed after restart"
            )
            assert len(indexed) == count
            assert before_kill <= in_index
            spoken = sorted(tuple(t.text for t in c.turns if asr_text(t.text)) for c in corpus)
            assert sorted(tuple(u["text"] for u in d["utterances"]) for d in indexed) == spoken  # type: ignore[attr-defined]
            assert any(d["source"] == "post_call" for d in indexed), (
                "the gap was recovered from post-call transcripts"
            )
    finally:
        for process in [*workers, emulator]:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert emulator.stdout is not None
        emulator.stdout.close()
