"""``transcript-indexer run`` as operators run it, against ``transcript-indexer emulate``.

The corpora are conversations no other test or the demo uses (parts of chitchat-dataset),
played by the emulator process; the worker is a process too, stopped with SIGTERM or SIGKILL.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from opensearchpy import OpenSearch, helpers
from osmem_server import OsmemServer
from prometheus_client.parser import text_string_to_metric_families

from indexer.demo import QUEUES as QUEUE_NAMES
from indexer.demo import build_demo_corpus, find_leaks, worker_environment
from indexer.emulator import CorpusConversation, dump_corpus
from indexer.emulator.scenario import asr_text
from indexer.sealing import Sealer
from indexer.status import read_status
from tests.harness import same_conversations, same_or_more_redacted

pytestmark = pytest.mark.e2e

COUNT = 30
COMMAND = [sys.executable, "-m", "indexer"]


def stop(*processes: subprocess.Popen[str] | None) -> None:
    """Kill whatever is still running."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


@contextmanager
def emulate(
    corpus: list[CorpusConversation], tmp_path: Path, *flags: str, env: dict[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """``transcript-indexer emulate`` playing ``corpus`` as a process (with ``env``, else this
    process's environment): yields its ready line."""
    corpus_path = tmp_path / "corpus.ndjson"
    dump_corpus(corpus, corpus_path)
    process = subprocess.Popen(
        [*COMMAND, "emulate", "--corpus", str(corpus_path), *flags],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        yield json.loads(process.stdout.readline())
    finally:
        stop(process)
        process.stdout.close()


def run_worker(
    config_text: str,
    ready: dict[str, Any],
    opensearch_url: str,
    tmp_path: Path,
    *,
    capture_log: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``transcript-indexer run`` with ``config_text`` as its TOML file.

    :param capture_log: pipe stderr (then read it with ``communicate``, or the pipe fills).
    :param env: variables to set on top of the emulator's and OpenSearch's.
    """
    config = tmp_path / "indexer.toml"
    config.write_text(config_text)
    env = {
        **worker_environment(ready, opensearch_url=opensearch_url, state_dir=tmp_path / "state"),
        **(env or {}),
    }
    stderr = subprocess.PIPE if capture_log else None
    return subprocess.Popen([*COMMAND, "run", "--config", str(config)], env=env, stderr=stderr, text=True)


def wait_for(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.3) -> None:
    """Poll another process's observable state until ``condition`` holds or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(every_s)


def indexed_count(client: OpenSearch) -> int:
    if not client.indices.exists_alias(name="transcripts"):
        return 0
    client.indices.refresh(index="transcripts")
    count: int = client.count(index="transcripts")["count"]
    return count


def _answers(url: str) -> bool:
    try:
        httpx.get(url)
    except httpx.TransportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_run_indexes_an_unseen_corpus_and_drains_on_sigterm(any_opensearch_url: str, tmp_path: Path) -> None:
    """Every conversation indexed, PII masked; endpoints answer; JSON logs hold no content; SIGTERM drains.

    On both tiers: osmem-server and a real OpenSearch node (emulator → worker → node)."""
    corpus, injected = build_demo_corpus(COUNT, seed=2024, pii_share=0.6, offset=7168 - COUNT)
    worker = None
    endpoints = f"http://127.0.0.1:{free_port()}"
    with emulate(corpus, tmp_path, "--speed", "50", "--interval", "6") as ready:
        try:
            worker = run_worker(
                "[completion]\ngrace_period_s = 1.0\n",
                ready,
                any_opensearch_url,
                tmp_path,
                capture_log=True,
                env={"INDEXER_LOG_FORMAT": "json", "INDEXER_HTTP_LISTEN": endpoints.removeprefix("http://")},
            )
            client = OpenSearch(hosts=[any_opensearch_url])
            wait_for(lambda: indexed_count(client) >= COUNT or worker.poll() is not None, 120)
            count = indexed_count(client)
            # the node has the last batch a moment before the worker counts it (after the write)
            wait_for(lambda: f"indexed_total {COUNT}.0" in httpx.get(f"{endpoints}/metrics").text, 10)
            ready_answer = httpx.get(f"{endpoints}/readyz")
            metrics = httpx.get(f"{endpoints}/metrics").text
            worker.send_signal(signal.SIGTERM)
            _, log = worker.communicate(timeout=60)
        finally:
            stop(worker)
        assert worker.returncode == 0, log[-2000:]
        print(f"\nrun command: {COUNT} conversations played, {count} indexed")
        assert count == COUNT
        documents = [hit["_source"] for hit in helpers.scan(client, index="transcripts")]
        assert all(d["complete"] for d in documents)
        assert find_leaks(client, "transcripts", injected) == []
        assert ready_answer.status_code == 200, ready_answer.text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
        }
        # Each conversation is closed live or, when a gap hid its start, rebuilt by recovery (a
        # conversation may be both: the rebuilt document then supersedes the partial live one).
        ended = samples[("transcript_indexer_conversations_completed_total", (("reason", "ended"),))]
        rebuilt = samples.get(
            ("transcript_indexer_conversations_recovered_total", (("outcome", "missed"),)), 0
        )
        assert ended + rebuilt >= COUNT and ended > 0, metrics
        assert samples[("transcript_indexer_indexed_total", ())] >= COUNT, metrics
        # hang-up to indexed, on the service's clock: the emulator's runs 50 times faster
        assert samples[("transcript_indexer_hangup_to_indexed_seconds_count", ())] >= COUNT
        assert samples[("transcript_indexer_hangup_to_indexed_seconds_sum", ())] > COUNT * 1.0, metrics
        # the stream's lag behind each transcription message's eventTime, on the same clock
        assert samples[("transcript_indexer_stream_lag_seconds_count", ())] > 0, metrics
        assert samples[("transcript_indexer_token_renewals_total", ())] == 1.0
        # prometheus-client's process and platform collectors, and the build
        assert samples[("process_resident_memory_bytes", ())] > 0 and samples[("process_open_fds", ())] > 0
        assert any(name == "python_info" for name, _ in samples)
        build = next(labels for name, labels in samples if name == "transcript_indexer_build_info")
        assert dict(build)["version"] == importlib.metadata.version("transcript-indexer")

        # Every log line is one JSON event, and none holds content, a PII value or a secret.
        events = [json.loads(line) for line in log.splitlines()]
        assert {"timestamp", "level", "logger", "event"} <= set(events[0])
        assert any(e["event"] == "received SIGTERM, draining" for e in events)
        # the pipeline it built: the version, plugins with theirs, the rule set, the sinks
        started = f"transcript-indexer {importlib.metadata.version('transcript-indexer')}; plugins: "
        (pipeline,) = [e["event"] for e in events if e["event"].startswith(started)]
        assert "pii (transcript-indexer-pii " in pipeline and "redaction rules (rule set " in pipeline
        assert any(e["event"] == "sinks: opensearch" for e in events)
        closed = [e for e in events if e["event"].startswith("conversation ") and "closed" in e["event"]]
        assert len({e["conversation_id"] for e in closed}) + rebuilt >= COUNT
        assert all(e["conversation_id"] in e["event"] for e in closed)
        spoken = {t.text for c in corpus for t in c.turns if len(t.text) >= 12}
        spoken |= {asr_text(t.text) for c in corpus for t in c.turns if len(t.text) >= 12}
        for line in log.splitlines():
            assert not any(text in line for text in spoken), "a transcript text reached the log"
        for value in (p.value for p in injected):
            assert value not in log, "a PII value reached the log"
        assert ready["client_secret"] not in log and "Bearer" not in log and "access_token" not in log


def test_sigkill_with_opensearch_down_loses_nothing(tmp_path: Path) -> None:
    """Transcripts finished while OpenSearch is down survive SIGKILL and arrive after a restart."""
    count = 8
    corpus, _ = build_demo_corpus(count, seed=9, pii_share=0.0, offset=5000)
    config = (
        "[completion]\ngrace_period_s = 0.5\n[plugins.opensearch]\ntimeout_s = 0.5\nretry_timeout_s = 1.0\n"
    )
    outbox = tmp_path / "state" / "outbox"
    node = OsmemServer.start(japanese=False)
    workers: list[subprocess.Popen[str]] = []
    try:
        # Calls start once the first worker is subscribed, so all of them finish while
        # OpenSearch is frozen and wait in its outbox.
        with emulate(
            corpus,
            tmp_path,
            "--speed",
            "50",
            "--interval",
            "6",
            "--start-delay",
            "6",
            "--wait-for-subscriber",
        ) as ready:
            node.process.send_signal(signal.SIGSTOP)
            endpoints = f"127.0.0.1:{free_port()}"
            listen = {"INDEXER_HTTP_LISTEN": endpoints}
            workers.append(run_worker(config, ready, node.url, tmp_path, env=listen))
            # not ready from the start, before any write was tried: the sink could not be opened
            wait_for(lambda: _answers(f"http://{endpoints}/readyz"), 60, every_s=0.1)
            not_ready = httpx.get(f"http://{endpoints}/readyz")
            assert not list(outbox.glob("*.json")), "no transcript finished yet"
            assert not_ready.status_code == 503 and not_ready.json()["checks"]["sink_reachable"] is False
            wait_for(lambda: len(list(outbox.glob("*.json"))) >= count, 90, every_s=0.2)
            assert len(list(outbox.glob("*.json"))) == count, "every finished transcript waits in the outbox"
            workers[0].kill()
            workers[0].wait()
            node.process.send_signal(signal.SIGCONT)
            workers.append(run_worker(config, ready, node.url, tmp_path))
            client = OpenSearch(hosts=[node.url])
            wait_for(lambda: indexed_count(client) >= count and not list(outbox.glob("*.json")), 90)
            indexed = indexed_count(client)
            print(f"\nafter SIGKILL and restart: {indexed} of {count} indexed")
            assert indexed == count
            assert list(outbox.glob("*.json")) == []
    finally:
        node.process.send_signal(signal.SIGCONT)
        stop(*workers)
        node.close()
        if node.process.stdout is not None:
            node.process.stdout.close()


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_sigkill_mid_call_resumes_and_recovers_the_gap(
    osmem: OsmemServer, tmp_path: Path, encrypted: bool
) -> None:
    """After a SIGKILL mid-call and a restart, every conversation is indexed whole.

    What arrived before the kill is resumed from the journal; what Genesys sent while the
    worker was down comes from the post-call transcript (gap recovery). With
    ``INDEXER_STATE_KEYS`` the journal holds no utterance in clear and resumes all the same.
    """
    count = 6
    corpus, _ = build_demo_corpus(count, seed=3, pii_share=0.0, offset=6000)
    journal = tmp_path / "state" / "journal"
    keys = Fernet.generate_key().decode()
    sealer = Sealer([keys] if encrypted else [])
    env = {"INDEXER_STATE_KEYS": keys} if encrypted else {}

    def utterances_in_journal() -> set[str]:
        found = set()
        # the worker is appending: a last line without its newline is still being written
        lines = [line for p in sorted(journal.glob("*.ndjson")) for line in p.read_bytes().split(b"\n")[:-1]]
        for line in lines:
            frame = json.loads(json.loads(sealer.open(line)).get("f") or "{}")
            for result in frame.get("eventBody", {}).get("transcripts", []):
                found.add(result["alternatives"][0]["decoratedTranscript"])
        return found

    workers: list[subprocess.Popen[str]] = []
    with (
        emulate(corpus, tmp_path, "--speed", "20", "--interval", "20", "--start-delay", "5") as ready,
        osmem.clone() as index,
    ):
        try:
            config = "[completion]\ngrace_period_s = 0.5\n"
            workers.append(run_worker(config, ready, index.url, tmp_path, env=env))
            wait_for(lambda: len(utterances_in_journal()) >= 4, 60, every_s=0.1)
            workers[0].kill()
            workers[0].wait()
            before_kill = utterances_in_journal()
            assert before_kill, "the worker received utterances before it was killed"
            if encrypted:
                at_rest = b"".join(p.read_bytes() for p in journal.glob("*.ndjson"))
                assert not any(text.encode() in at_rest for text in before_kill)
                assert b'"conversationId"' not in at_rest
            workers.append(run_worker(config, ready, index.url, tmp_path, env=env))
            client = OpenSearch(hosts=[index.url])
            wait_for(lambda: indexed_count(client) >= count, 90, every_s=0.5)
            indexed = [hit["_source"] for hit in helpers.scan(client, index="transcripts")]
        finally:
            stop(*workers)
    in_index = {u["text"] for d in indexed for u in d["utterances"]}
    print(f"\njournal: {len(before_kill)} utterances received before SIGKILL, all indexed after restart")
    assert len(indexed) == count
    assert all(any(same_or_more_redacted(text, said) for text in in_index) for said in before_kill)
    spoken = [tuple(t.text for t in c.turns if asr_text(t.text)) for c in corpus]
    assert same_conversations([tuple(u["text"] for u in d["utterances"]) for d in indexed], spoken)
    assert any(d["source"] == "post_call" for d in indexed), (
        "the gap was recovered from post-call transcripts"
    )


def test_run_indexes_every_media_type_whole(osmem: OsmemServer, tmp_path: Path) -> None:
    """Voice (with transfers and outbound calls), messaging, chat and email conversations on the
    followed queues, shaped as the SDK models them, are each indexed whole and named right."""
    count = 24
    corpus, _ = build_demo_corpus(
        count, seed=71, pii_share=0.0, offset=7168 - 2 * COUNT - count, digital_share=0.5, transfer_share=0.5
    )
    media = {c.media for c in corpus}
    assert media == {"voice", "callback", "message", "chat", "email"}
    assert {c.transfer_type for c in corpus if c.transfer_to} == {"blind", "consult"}
    worker = None
    with emulate(corpus, tmp_path, "--speed", "50", "--interval", "6") as ready, osmem.clone() as index:
        try:
            worker = run_worker("[completion]\ngrace_period_s = 1.0\n", ready, index.url, tmp_path)
            client = OpenSearch(hosts=[index.url])
            wait_for(lambda: indexed_count(client) >= count or worker.poll() is not None, 150)
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        finally:
            stop(worker)
        documents = [hit["_source"] for hit in helpers.scan(client, index="transcripts")]
    assert worker.returncode == 0
    assert not (tmp_path / "state" / "dead-letters.ndjson").exists()

    def texts(conversation: CorpusConversation) -> list[str]:
        said = [t.text for t in conversation.turns if asr_text(t.text)]
        if conversation.media == "email":
            subject = conversation.subject or ""
            return [f"{subject if i == 0 else 'Re: ' + subject}\n\n{text}" for i, text in enumerate(said)]
        return said

    for kind in ("voice", "message", "chat", "email"):  # a callback ends in a call: a voice document
        played = [tuple(texts(c)) for c in corpus if ("voice" if c.media == "callback" else c.media) == kind]
        indexed = [tuple(u["text"] for u in d["utterances"]) for d in documents if d["media_type"] == kind]
        assert same_conversations(indexed, played), kind
    for document in documents:
        assert document["complete"] is True and document["completion_reason"] == "ended", document[
            "media_type"
        ]
        assert document["source"] == ("api" if document["media_type"] != "voice" else document["source"])
        assert document["queues"] and all(q["name"] in QUEUE_NAMES for q in document["queues"])
        speakers = {u["speaker"] for u in document["utterances"]}
        assert speakers <= {"customer", "agent"} and speakers
    transferred = sum(len(d["queues"]) == 2 for d in documents)
    # The emulator transfers a call half-way: only calls with two turns or more.
    assert transferred == sum(1 for c in corpus if c.transfer_to and len(texts(c)) >= 2) > 0
    by_media = sorted(Counter(d["media_type"] for d in documents).items())
    print(f"\nevery media type: {by_media}, {transferred} transferred")


def test_a_refused_queue_topic_stops_the_worker_with_one_line(osmem: OsmemServer, tmp_path: Path) -> None:
    """Without permission for the queue topic the worker would see nothing: it says which
    topic and which permissions Genesys reported missing, exit 2, no traceback."""
    corpus, _ = build_demo_corpus(2, seed=5, pii_share=0.0, offset=6000)
    with emulate(corpus, tmp_path, "--speed", "50") as ready, osmem.clone() as index:
        refused = httpx.post(
            f"{ready['api_base_url']}/_emulator/faults", json={"reject_topics": ["v2.routing."]}
        )
        assert refused.status_code == 200
        worker = run_worker("", ready, index.url, tmp_path, capture_log=True)
        try:
            _, log = worker.communicate(timeout=60)
        finally:
            stop(worker)
    assert worker.returncode == 2, log[-2000:]
    last = log.strip().splitlines()[-1]
    assert last.startswith(
        "transcript-indexer: error: GENESYS_QUEUES: Genesys Cloud refused the topic v2.routing."
    )
    assert "missing permissions: routing:queue:view" in last and "Traceback" not in log


def test_no_redaction_rule_no_indexing(osmem: OsmemServer, tmp_path: Path) -> None:
    """With the rule plugins disabled the worker refuses to start (one line, exit 2) before
    any call to Genesys; ``redaction.allow_unredacted = true`` lets it run, and it says so."""
    corpus, _ = build_demo_corpus(2, seed=6, pii_share=0.0, offset=6100)
    foreign = os.environ.get("INDEXER_DISABLED_PLUGINS", "")  # conftest: plugins installed beside ours
    no_rules = {"INDEXER_DISABLED_PLUGINS": f"pii,example_rules,{foreign}"}
    with emulate(corpus, tmp_path, "--speed", "50") as ready, osmem.clone() as index:
        worker = run_worker("", ready, index.url, tmp_path, capture_log=True, env=no_rules)
        try:
            _, log = worker.communicate(timeout=60)
        finally:
            stop(worker)
        assert worker.returncode == 2, log[-2000:]
        assert (
            log.strip().splitlines()[-1].startswith("transcript-indexer: error: no redaction rule is loaded")
        )
        token = httpx.post(
            f"{ready['login_base_url']}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(ready["client_id"], ready["client_secret"]),
        ).json()["access_token"]
        channels = httpx.get(
            f"{ready['api_base_url']}/api/v2/notifications/channels",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert channels.json()["entities"] == [], "no channel was created"
        allowed = run_worker(
            "[redaction]\nallow_unredacted = true\n",
            ready,
            index.url,
            tmp_path,
            capture_log=True,
            env=no_rules,
        )
        try:
            wait_for(
                lambda: indexed_count(OpenSearch(hosts=[index.url])) >= 1 or allowed.poll() is not None, 60
            )
            allowed.send_signal(signal.SIGTERM)
            _, log = allowed.communicate(timeout=60)
        finally:
            stop(allowed)
    assert allowed.returncode == 0, log[-2000:]
    assert "0 redaction rules" in log and "indexed UNREDACTED" in log


def test_one_worker_per_state_directory(osmem: OsmemServer, tmp_path: Path) -> None:
    """A second worker on the same state directory gets one line and exit 2; so does a
    state directory that cannot be one (a file)."""
    corpus, _ = build_demo_corpus(2, seed=7, pii_share=0.0, offset=6200)
    with emulate(corpus, tmp_path, "--speed", "50") as ready, osmem.clone() as index:
        first = run_worker("", ready, index.url, tmp_path)
        try:
            wait_for(lambda: (tmp_path / "state" / "status.json").exists() or first.poll() is not None, 60)
            second = run_worker("", ready, index.url, tmp_path, capture_log=True)
            _, log = second.communicate(timeout=60)
        finally:
            stop(first)
        assert second.returncode == 2, log[-2000:]
        assert log.strip().splitlines()[-1].startswith("transcript-indexer: error: INDEXER_STATE_DIR ")
        assert "in use by another worker" in log and "Traceback" not in log
        not_a_directory = tmp_path / "file"
        not_a_directory.write_text("")
        third = run_worker(
            "", ready, index.url, tmp_path, capture_log=True, env={"INDEXER_STATE_DIR": str(not_a_directory)}
        )
        _, log = third.communicate(timeout=60)
    assert third.returncode == 2 and log.strip().splitlines()[-1].startswith(
        f"transcript-indexer: error: INDEXER_STATE_DIR {not_a_directory}: "
    ), log[-2000:]


def test_a_full_disk_stops_the_worker_with_one_line(osmem: OsmemServer, tmp_path: Path) -> None:
    """The state directory's disk is full (its dead-letter file is /dev/full, where every
    write fails with ENOSPC): at the first dead letter the worker stops with one line."""
    corpus, _ = build_demo_corpus(2, seed=8, pii_share=0.0, offset=6300)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "dead-letters.ndjson").symlink_to("/dev/full")
    with emulate(corpus, tmp_path, "--speed", "50") as ready, osmem.clone() as index:
        worker = run_worker("", ready, index.url, tmp_path, capture_log=True)
        try:
            # a broadcast reaches the sockets open at that moment: wait until the status counts one
            status = state / "status.json"
            wait_for(
                lambda: (read_status(status) or {}).get("channels", 0) > 0 or worker.poll() is not None, 60
            )
            httpx.post(f"{ready['api_base_url']}/_emulator/faults", json={"malformed": 1})
            _, log = worker.communicate(timeout=60)
        finally:
            stop(worker)
    assert worker.returncode == 1, log[-2000:]
    last = log.strip().splitlines()[-1]
    assert last.startswith(f"transcript-indexer: error: INDEXER_STATE_DIR {state}: No space left on device")
    assert "Traceback" not in log


def test_check_reports_each_part_and_touches_no_channel(tmp_path: Path, opensearch_url: str) -> None:
    """``check`` against the emulator and a node: every line ``ok``, exit 0, and no
    notification channel created; wrong credentials, an unknown queue and a sink nobody
    listens on each fail their own line, exit 1, the other lines still checked."""
    corpus, _ = build_demo_corpus(2, seed=5)
    with emulate(corpus, tmp_path, "--start-delay", "600") as ready:
        env = worker_environment(ready, opensearch_url=opensearch_url, state_dir=tmp_path / "state")
        result = subprocess.run(
            [*COMMAND, "--log-level", "WARNING", "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        lines = {line.split()[1]: line for line in result.stdout.splitlines()}
        assert set(lines) == {"settings", "plugins", "state", "genesys", "sink"}, result.stdout
        assert all(line.startswith("ok ") for line in lines.values()), result.stdout
        assert all(name in lines["genesys"] for name in ready["queues"])
        assert "redaction rules" in lines["plugins"]
        status = httpx.get(f"{ready['api_base_url']}/_emulator/status").json()
        assert status["channels"] == 0

        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        broken = {
            **env,
            "GENESYS_CLIENT_SECRET": "wrong",
            "OPENSEARCH_URL": f"http://127.0.0.1:{closed}",
        }
        config = tmp_path / "fast.toml"
        config.write_text("[plugins.opensearch]\ntimeout_s = 0.5\nretry_timeout_s = 1.0\n")
        failed = subprocess.run(
            [*COMMAND, "--log-level", "CRITICAL", "check", "--json", "--config", str(config)],
            env=broken,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert failed.returncode == 1, failed.stderr
        checks = {c["name"]: c for c in map(json.loads, failed.stdout.splitlines())}
        assert checks["plugins"]["ok"] and checks["state dir"]["ok"]
        assert not checks["genesys"]["ok"] and "GENESYS_CLIENT_SECRET" in checks["genesys"]["detail"]
        assert not checks["sink opensearch"]["ok"]

        unknown = subprocess.run(
            [*COMMAND, "--log-level", "CRITICAL", "check", "--json"],
            env={**env, "GENESYS_QUEUES": "No Such Queue"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        genesys = next(c for c in map(json.loads, unknown.stdout.splitlines()) if c["name"] == "genesys")
        assert genesys == {
            "name": "genesys",
            "ok": False,
            "detail": "GENESYS_QUEUES: no queue named 'No Such Queue'",
        }


def test_dev_runs_live_calls_until_ctrl_c(tmp_path: Path) -> None:
    """``dev``: the embedded node, the emulator and the worker; calls start once the worker
    has subscribed, so even at a high speed every voice call is indexed from the live
    stream (not rebuilt after the fact); Ctrl-C drains the worker and ends with 0."""
    process = subprocess.Popen(
        [
            *COMMAND,
            "--log-level",
            "WARNING",
            "dev",
            "--conversations",
            "4",
            "--speed",
            "50",
            "--interval",
            "2",
        ],
        env={**os.environ, "INDEXER_LOG_LEVEL": "WARNING"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        url = next(line.split()[2] for line in lines if line.startswith("OpenSearch (embedded)"))
        client = OpenSearch(hosts=[url])
        deadline = time.monotonic() + 120
        count = 0
        while count < 4 and time.monotonic() < deadline:
            time.sleep(1)
            if client.indices.exists_alias(name="transcripts"):
                client.indices.refresh(index="transcripts")
                count = client.count(index="transcripts")["count"]
        assert count == 4
        sources = {
            (hit["_source"]["media_type"] == "voice", hit["_source"]["source"])
            for hit in helpers.scan(client, index="transcripts")
        }
        assert {source for voice, source in sources if voice} <= {"live"}, sources
        # A terminal's Ctrl-C reaches the worker too, then dev's SIGTERM: still one drain, exit 0
        worker_pid = int(next(line.split()[2].rstrip(",") for line in lines if line.startswith("worker")))
        os.kill(worker_pid, signal.SIGINT)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        stop(process)
        process.stdout.close()


def test_a_restart_does_not_rebuild_what_was_indexed(osmem: OsmemServer, tmp_path: Path) -> None:
    """Calls that ended while no worker ran are rebuilt by the first run's look-back over
    ``recovery.lookback_s``; a second run finds them again and rebuilds none (the outbox
    remembers what it delivered). The log line says what the look-back was and found."""
    corpus, _ = build_demo_corpus(6, seed=8, pii_share=0.0, digital_share=0.0, offset=6300)
    with emulate(corpus, tmp_path, "--speed", "50", "--interval", "2") as ready, osmem.clone() as index:
        emulator_status = f"{ready['api_base_url']}/_emulator/status"
        wait_for(lambda: httpx.get(emulator_status).json()["ended"] == 6, 60)  # all over, none seen
        client = OpenSearch(hosts=[index.url])
        env = {
            **worker_environment(ready, opensearch_url=index.url, state_dir=tmp_path / "state"),
            "INDEXER_LOG_FORMAT": "json",
        }
        (tmp_path / "indexer.toml").write_text("[completion]\ngrace_period_s = 1.0\n")
        command = [*COMMAND, "run", "--config", str(tmp_path / "indexer.toml")]

        def run_once(log_path: Path) -> list[str]:
            """Run until the look-back is logged and all 6 are indexed, then SIGTERM; the log."""
            with log_path.open("w") as log_file:
                worker = subprocess.Popen(command, env=env, stderr=log_file, text=True)
                try:
                    wait_for(
                        lambda: "start-up look-back" in log_path.read_text() or worker.poll() is not None, 60
                    )
                    wait_for(lambda: indexed_count(client) >= 6 or worker.poll() is not None, 90)
                    worker.send_signal(signal.SIGTERM)
                    assert worker.wait(timeout=60) == 0
                finally:
                    stop(worker)
            events = [json.loads(line)["event"] for line in log_path.read_text().splitlines()]
            downtimes.extend(e for e in events if e.startswith(("the previous run ", "first run with")))
            return [e for e in events if e.startswith("start-up look-back (recovery.lookback_s) from ")]

        downtimes: list[str] = []
        (first,) = run_once(tmp_path / "first.log")
        assert indexed_count(client) == 6
        (second,) = run_once(tmp_path / "second.log")
        status = json.loads((tmp_path / "state" / "status.json").read_text())
    said = r"\(36\d\d s\): asked for conversations that ended from .* \(36\d\d s back\), 6 found, {} to rec"
    assert re.search(said.format(6), first), first
    assert re.search(said.format(0), second), second
    # the time no worker ran, as it was: from the last status the previous run wrote
    assert downtimes[0].startswith("first run with the state directory")
    assert re.fullmatch(r"the previous run stopped at \S+: down for about [0-9] s", downtimes[1]), downtimes
    assert status["recovered"].get("missed", 0) == 0, status
