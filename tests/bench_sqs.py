"""Scale-out on EventBridge/SQS: 1, 2 and 4 replicas sharing one queue, on this machine.

``make bench-sqs`` (``BENCH_REPLICAS``, default ``1,2,4``; ``BENCH_SQS_CONVERSATIONS`` per
run, default 300; ``BENCH_SQS_RATE``, conversations started per real second, default 20;
``BENCH_SPEED``, the emulator's time compression, default 10; ``BENCH_TRANSCRIPT_DELAY``,
simulated seconds from hang-up until the post-call transcript is ready, default 0 (Genesys
takes minutes: the replica holds the end's batch meanwhile and latency grows by it)).
For each number of replicas: ElasticMQ (an SQS-compatible server, :mod:`tests.elasticmq`,
fetched from Maven Central; moto's server saturates a core near 20 messages a second), an
osmem-server node, the emulator sending its demo conversations (voice, chitchat turns with
Faker PII) to the queue as Genesys' EventBridge integration does (a tenth of them twice,
each up to 1 s late), and that many ``transcript-indexer run`` processes with ``source =
"sqs"`` and ``sqs.shared``. Printed per run:

- distinct conversations in the index, and the seconds from the first to the last of
  them (the offer itself lasts ``BENCH_SQS_CONVERSATIONS / BENCH_SQS_RATE`` s);
- conversations indexed per second over the best 5 s, and the EventBridge events per
  second that carries;
- SQS requests per conversation (receive, extend, delete, of every replica);
- hang-up → indexed p50 and p99 in real seconds (the replicas' histograms merged, the
  service's clock read back to real time: the upper bound of the bucket);
- CPU seconds of the replicas together, and of the emulator and the SQS server.

Every process shares the same 2 cores, so more replicas add no CPU here: the figures say
what one replica costs and that replicas share the work, not what a larger machine or a
cluster would sustain. Not a test: it asserts nothing. ``BENCH_KEEP=DIR`` keeps each run's
folder (the workers' and the emulator's logs, the state directories) under ``DIR``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import httpx

from indexer.demo import build_demo_corpus, worker_environment
from indexer.emulator.corpus import dump_corpus
from tests import elasticmq
from tests.bench_live import _quantile, _wait_cpu_s

REPLICAS = [int(n) for n in os.environ.get("BENCH_REPLICAS", "1,2,4").split(",")]
COUNT = int(os.environ.get("BENCH_SQS_CONVERSATIONS", "300"))
RATE = float(os.environ.get("BENCH_SQS_RATE", "20"))
TRANSCRIPT_DELAY = float(os.environ.get("BENCH_TRANSCRIPT_DELAY", "0"))
SPEED = float(os.environ.get("BENCH_SPEED", "10"))
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
WINDOW_S = 5.0
TIMEOUT_S = 900.0


def _status(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data


def _merged_histogram(texts: list[str], name: str) -> str:
    """The bucket lines of ``name`` summed over every replica's metrics, as one text."""
    buckets: dict[str, float] = {}
    for text in texts:
        for bound, count in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', text, re.MULTILINE):
            buckets[bound] = buckets.get(bound, 0.0) + float(count)
    return "\n".join(f'{name}_bucket{{le="{bound}"}} {count}' for bound, count in buckets.items())


def _conversations_indexed(url: str) -> int:
    """Distinct conversations in the index (replicas that both saw an end both index it)."""
    try:
        answer = httpx.post(f"{url}/transcripts/_count", timeout=10)
    except httpx.TransportError:
        return 0
    return int(answer.json().get("count", 0)) if answer.status_code == 200 else 0


def run(replicas: int, folder: Path) -> dict[str, Any]:
    """One run with ``replicas`` workers; its figures."""

    env_aws = {**os.environ, **AWS}
    with elasticmq.start() as (sqs_url, server):
        return _run(replicas, folder, env_aws, sqs_url, server)


def _run(
    replicas: int, folder: Path, env_aws: dict[str, str], sqs_url: str, server: subprocess.Popen[bytes]
) -> dict[str, Any]:
    from osmem_server import OsmemServer

    workers: list[subprocess.Popen[str]] = []
    emulator = None
    try:
        client = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs_url, aws_access_key_id="bench",
                              aws_secret_access_key="bench")  # fmt: skip
        queue_url = client.create_queue(QueueName="genesys")["QueueUrl"]
        corpus, _ = build_demo_corpus(
            COUNT, seed=replicas, pii_share=0.25, digital_share=0.0, transfer_share=0.0
        )
        dump_corpus(corpus, folder / "corpus.ndjson")
        emulator = subprocess.Popen(
            [sys.executable, "-m", "indexer", "--log-level", "WARNING", "emulate", "--corpus",
             str(folder / "corpus.ndjson"), "--speed", str(SPEED), "--interval", str(SPEED / RATE),
             "--start-delay", "8", "--sqs-queue-url", queue_url, "--sqs-endpoint-url", sqs_url,
             "--transcript-delay", str(TRANSCRIPT_DELAY), "--duplicate-rate", "0.1", "--sqs-max-delay", "1"],
            env=env_aws, stdout=subprocess.PIPE, stderr=open(folder / "emulator.log", "w"), text=True,  # noqa: SIM115
        )  # fmt: skip
        assert emulator.stdout is not None
        ready = json.loads(emulator.stdout.readline())
        config = folder / "bench.toml"
        config.write_text(
            "[completion]\ngrace_period_s = 2.0\n[sqs]\nwait_time_s = 1\nshared = true\n"
            "[plugins.opensearch]\nretention_days = 0\n",
            encoding="utf-8",
        )
        with OsmemServer.start(japanese=False) as node:
            for n in range(replicas):
                env = {
                    **env_aws,
                    **worker_environment(ready, opensearch_url=node.url, state_dir=folder / f"state-{n}"),
                    "INDEXER_SOURCE": "sqs",
                    "INDEXER_SQS_QUEUE_URL": queue_url,
                    "INDEXER_SQS_ENDPOINT_URL": sqs_url,
                    "INDEXER_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                }
                command = [sys.executable, "-m", "indexer", "run", "--config", str(config)]
                log = open(folder / f"worker-{n}.log", "w")  # noqa: SIM115
                workers.append(subprocess.Popen(command, env=env, text=True, stderr=log))
            samples: list[tuple[float, int]] = []
            started = time.monotonic()
            indexed = 0
            while indexed < COUNT and time.monotonic() - started < TIMEOUT_S:
                time.sleep(1.0)
                indexed = _conversations_indexed(node.url)
                samples.append((time.monotonic(), indexed))
            metrics = [
                httpx.get(f"{s['http']}/metrics", timeout=10).text
                for s in (_status(folder / f"state-{n}" / "status.json") for n in range(replicas))
                if s.get("http")
            ]
            events = int(httpx.get(f"{ready['api_base_url']}/_emulator/status").json().get("sqs_sent", 0))
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            worker_cpu = sum(_wait_cpu_s(worker) for worker in workers)
        emulator.send_signal(signal.SIGTERM)
        emulator_cpu = _wait_cpu_s(emulator)
        server.send_signal(signal.SIGTERM)
        server_cpu = _wait_cpu_s(server)  # type: ignore[arg-type]
    finally:
        for process in (*workers, emulator):
            if process is not None and process.returncode is None:
                process.kill()
                process.wait()
    statuses = [_status(folder / f"state-{n}" / "status.json") for n in range(replicas)]
    requests = sum(int(s.get("sqs_requests", 0)) for s in statuses)
    rebuilds = sum(int(s.get("recovered", {}).get("rebuilt", 0)) for s in statuses)
    kept = max(
        ((n1 - n0) / (t1 - t0) for t0, n0 in samples for t1, n1 in samples if t1 - t0 >= WINDOW_S),
        default=0.0,
    )
    indexing = [t for t, n in samples if n > 0]
    span = (indexing[-1] - indexing[0] + 1.0) if indexing else 0.0
    histogram = _merged_histogram(metrics, "transcript_indexer_hangup_to_indexed_seconds")
    name = "transcript_indexer_hangup_to_indexed_seconds"
    return {
        "replicas": replicas,
        "indexed": indexed,
        "kept": kept,
        "span": span,
        "events_per_s": kept * events / max(COUNT, 1),
        "requests_per_conversation": requests / max(indexed, 1),
        "rebuilds_per_conversation": rebuilds / max(indexed, 1),
        "p50": _quantile(histogram, name, 0.5) / SPEED,
        "p99": _quantile(histogram, name, 0.99) / SPEED,
        "worker_cpu": worker_cpu,
        "other_cpu": emulator_cpu + server_cpu,
    }


def main() -> int:
    print(
        f"SQS scale-out benchmark: {COUNT} voice conversations per run offered at {RATE:g}/s, "
        f"emulator at speed {SPEED:g}, post-call transcripts ready {TRANSCRIPT_DELAY:g} simulated s "
        f"after hang-up, ElasticMQ, {os.cpu_count()} cores shared by every process\n"
    )
    print(
        f"{'replicas':>8}{'indexed':>9}{'in s':>6}{'conv/s':>8}{'events/s':>10}{'SQS req/conv':>14}"
        f"{'rebuilds/conv':>15}{'p50 s':>7}{'p99 s':>7}{'replicas CPU s':>16}{'emulator+SQS CPU s':>20}"
    )
    for replicas in REPLICAS:
        if os.environ.get("BENCH_KEEP"):
            keep = Path(os.environ["BENCH_KEEP"]) / str(replicas)
            keep.mkdir(parents=True, exist_ok=True)
            r = run(replicas, keep)
        else:
            with tempfile.TemporaryDirectory() as folder:
                r = run(replicas, Path(folder))
        print(
            f"{r['replicas']:>8}{r['indexed']:>9}{r['span']:>6.0f}{r['kept']:>8.1f}{r['events_per_s']:>10.0f}"
            f"{r['requests_per_conversation']:>14.1f}{r['rebuilds_per_conversation']:>15.2f}{r['p50']:>7.1f}{r['p99']:>7.1f}"
            f"{r['worker_cpu']:>16.1f}{r['other_cpu']:>20.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
