"""Live throughput: emulator → worker → embedded node at rising conversation rates.

``make bench-live`` (``BENCH_RATES``, conversations started per real second, default
``50,100,200``; ``BENCH_LIVE_CONVERSATIONS`` per rate, default 1000; ``BENCH_BACKLOG``, the
worker's ``completion.max_transcript_backlog``; ``BENCH_SPEED``, the
emulator's time compression, default 10: faster, a subscription's few ms become whole
seconds of a call, and calls lose their first words to it as no real one does). For each
rate, on this machine: an osmem-server node, the emulator playing demo conversations
(chitchat turns with Faker PII, every media type but callbacks) started ``rate`` a second after a
start-up delay, and ``transcript-indexer run`` against both, as an operator would run it
(its own process, redaction in its worker processes). Printed per rate:

- the rate the worker kept: conversations indexed per second over its best 5 s (while
  calls arrive at the offered rate, a worker that keeps up indexes them at that rate), and
  the transcription messages per second that carries;
- hang-up → indexed p50 and p99 in real seconds (the worker's histogram is on the
  service's clock, which runs ``speed`` times faster: read back to real time; the upper
  bound of the bucket), beside the target, the grace period + 2 s;
- the stream lag's p99 (a transcription message's ``eventTime`` to the worker applying
  it, read back to real seconds likewise): bounded while the worker keeps up, growing
  when it falls behind;
- documents per write to the sink (one bulk request, each document with its audit record);
- conversations rebuilt by post-call recovery (the worker fell behind its subscriptions),
  and of those, the ones it shed (its transcript backlog was full: control before data);
- CPU seconds of the worker with its redaction processes, and of the emulator (on the
  same 2 cores), and the worker's transcription messages per CPU-second.

Not a test: it asserts nothing and prints its figures beside the issue's targets (250
conversations/s, 5,000 transcription messages/s).
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

import httpx
from prometheus_client.parser import text_string_to_metric_families

from indexer.demo import build_demo_corpus, worker_environment
from indexer.emulator.corpus import dump_corpus

RATES = [float(r) for r in os.environ.get("BENCH_RATES", "50,100,200").split(",")]
COUNT = int(os.environ.get("BENCH_LIVE_CONVERSATIONS", "1000"))
SPEED = float(os.environ.get("BENCH_SPEED", "10"))
GRACE_S = 2.0
START_DELAY_S = 8.0  # real s before the first call: the worker starts and subscribes
TIMEOUT_S = 600.0
WINDOW_S = 5.0  # the kept rate is the best rate over this long, in s
TARGET_CONVERSATIONS = 250
#: ``BENCH_BACKLOG``: the worker's ``completion.max_transcript_backlog`` (default: its own).
BACKLOG = (
    f"max_transcript_backlog = {int(os.environ['BENCH_BACKLOG'])}\n"
    if os.environ.get("BENCH_BACKLOG")
    else ""
)
TARGET_MESSAGES = 5000


def _wait_cpu_s(process: subprocess.Popen[str], timeout_s: float = 120) -> float:
    """Wait for ``process`` and return its CPU seconds with its waited-for descendants'."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid, _, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = 0
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.1)
    process.kill()
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = -9
    return usage.ru_utime + usage.ru_stime


def _quantile(metrics: str, name: str, q: float) -> float:
    """The upper bound of the histogram bucket holding quantile ``q`` (``inf`` past the last)."""
    buckets = [
        (float(bound), float(count))
        for bound, count in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', metrics, re.MULTILINE)
    ]
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return float("nan")


def _sample(metrics: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` (0 when absent)."""
    return next(
        (
            sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if sample.name == name and not sample.labels
        ),
        0.0,
    )


def _ready_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{"):
            ready: dict[str, Any] = json.loads(line)
            return ready
    raise RuntimeError("the emulator did not start")


def run_rate(rate: float, folder: Path) -> dict[str, Any]:
    """One run at ``rate`` conversations per real second; returns its figures."""
    from osmem_server import OsmemServer

    corpus, _ = build_demo_corpus(COUNT, seed=int(rate), digital_share=0.3, transfer_share=0.15)
    # A callback is scheduled up to hours later (one of seed 50's rings back after 95
    # simulated minutes): it would hold the run, not load it.
    corpus = [c for c in corpus if c.media != "callback"]
    corpus_path = folder / "corpus.ndjson"
    dump_corpus(corpus, corpus_path)
    state_dir = folder / f"state-{rate:g}"
    executable = [sys.executable, "-m", "indexer", "--log-level", "WARNING"]
    with OsmemServer.start(japanese=False) as node:
        emulator = subprocess.Popen(
            [
                *executable,
                "emulate",
                "--corpus",
                str(corpus_path),
                "--speed",
                str(SPEED),
                "--interval",
                str(SPEED / rate),
                "--start-delay",
                str(START_DELAY_S),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        worker = None
        try:
            ready = _ready_line(emulator)
            launched = time.monotonic()
            env = worker_environment(ready, opensearch_url=node.url, state_dir=state_dir)
            config = folder / "bench.toml"
            config.write_text(
                f"[completion]\ngrace_period_s = {GRACE_S}\n{BACKLOG}"
                "[plugins.opensearch]\nretention_days = 0\n",
                encoding="utf-8",
            )
            worker = subprocess.Popen([*executable, "run", "--config", str(config)], env=env, text=True)
            status: dict[str, Any] = {}
            last_indexed = 0
            samples: list[tuple[float, int]] = []  # (time, indexed)
            while time.monotonic() - launched < TIMEOUT_S:
                time.sleep(0.5)
                try:
                    status = json.loads((state_dir / "status.json").read_text(encoding="utf-8"))
                except (FileNotFoundError, ValueError):
                    continue
                last_indexed = status.get("indexed", 0)
                samples.append((float(status["time"]), last_indexed))  # written every 2 s
                if last_indexed >= len(corpus):
                    break
            metrics = httpx.get(f"{status['http']}/metrics", timeout=10).text if status.get("http") else ""
            published = httpx.get(f"{ready['api_base_url']}/_emulator/status", timeout=10).json()
            worker.send_signal(signal.SIGTERM)
            worker_cpu = _wait_cpu_s(worker)
            emulator.send_signal(signal.SIGTERM)
            emulator_cpu = _wait_cpu_s(emulator)
        finally:
            for process in (worker, emulator):
                if process is not None and process.returncode is None:
                    process.kill()
                    process.wait()
    messages = int(status.get("messages", {}).get("transcription", 0))
    # the best WINDOW_S of the run: while conversations arrive at the offered rate, a worker
    # that keeps up indexes them at that rate
    kept = max(
        ((n1 - n0) / (t1 - t0) for t0, n0 in samples for t1, n1 in samples if t1 - t0 >= WINDOW_S),
        default=0.0,
    )
    name = "transcript_indexer_hangup_to_indexed_seconds"
    return {
        "rate": rate,
        "indexed": last_indexed,
        "kept": kept,
        "messages_per_s": kept * messages / max(last_indexed, 1),
        "p50": _quantile(metrics, name, 0.5) / SPEED,
        "p99": _quantile(metrics, name, 0.99) / SPEED,
        "lag_p99": _quantile(metrics, "transcript_indexer_stream_lag_seconds", 0.99) / SPEED,
        "per_bulk": _sample(metrics, "transcript_indexer_bulk_items_total")
        / max(_sample(metrics, "transcript_indexer_bulk_requests_total"), 1.0),
        # "messages": digital conversations read from the API, as always; the rest: fell behind
        "recovered": sum(n for kind, n in status.get("recovered", {}).items() if kind != "messages"),
        "recovered_kinds": status.get("recovered", {}),
        "incomplete": status.get("live_incomplete", {}),
        "shed": int(_sample(metrics, "transcript_indexer_conversations_shed_total")),
        "worker_cpu": worker_cpu,
        "emulator_cpu": emulator_cpu,
        "messages": messages,
        "published": published.get("published", 0),
    }


def main() -> int:
    print(
        f"Live benchmark: {COUNT} demo conversations per rate, emulator at speed {SPEED:g}, "
        f"grace period {GRACE_S:g} s, {os.cpu_count()} cores\n"
    )
    header = (
        f"{'offered conv/s':>14}{'indexed':>9}{'kept conv/s':>12}{'msgs/s':>8}{'p50 s':>7}{'p99 s':>7}"
        f"{'lag p99 s':>10}{'docs/bulk':>10}{'recovered':>10}{'shed':>6}"
        f"{'worker CPU s':>13}{'emulator CPU s':>15}"
        f"{'msgs/CPU-s':>11}"
    )
    print(header)
    for rate in RATES:
        with tempfile.TemporaryDirectory() as folder:
            r = run_rate(rate, Path(folder))
        print(
            f"{r['rate']:>14g}{r['indexed']:>9}{r['kept']:>12.0f}{r['messages_per_s']:>8.0f}{r['p50']:>7.2f}"
            f"{r['p99']:>7.2f}{r['lag_p99']:>10.3f}{r['per_bulk']:>10.1f}{r['recovered']:>10}{r['shed']:>6}{r['worker_cpu']:>13.1f}{r['emulator_cpu']:>15.1f}"
            f"{r['messages'] / max(r['worker_cpu'], 1e-9):>11.0f}",
            flush=True,
        )
        if os.environ.get("BENCH_VERBOSE") or r["recovered"]:
            print(
                f"  recovered: {r['recovered_kinds']}; voice calls not whole on the stream, by why: "
                f"{r['incomplete']}; frames published {r['published']:,}"
            )
    print(
        f"\ntargets: >= {TARGET_CONVERSATIONS} conversations/s and >= {TARGET_MESSAGES:,} transcription "
        f"messages/s kept, p99 <= {GRACE_S + 2:g} s (grace period + 2 s), none recovered"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
