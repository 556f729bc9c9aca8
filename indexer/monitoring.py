"""The worker's HTTP endpoints for operators: Prometheus metrics, liveness and readiness.

Served by hypercorn (trio worker) on ``http_listen`` (default ``127.0.0.1:9464``, the
port Prometheus exporters commonly use for their own metrics):

- ``GET /metrics``: the Prometheus text format, every metric prefixed
  ``transcript_indexer_`` (the list is in the README). The counters live in
  :class:`~indexer.stats.Statistics`; a collector reads them at each scrape.
- ``GET /healthz``: liveness, ``200`` while the worker's event loop answers.
- ``GET /readyz``: readiness, ``200`` when the access token is valid, every notification
  channel has an open socket, and the last write to the sinks succeeded; otherwise
  ``503``. The JSON body names each check.
- ``GET /live[?queue=NAME][&conversation=ID]``: the live view (:mod:`indexer.live`),
  redacted utterances as they arrive, one JSON object per line, until the client goes
  (``transcript-indexer watch``); a blank line every ``LIVE_KEEPALIVE_S`` keeps it open.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from prometheus_client import CollectorRegistry, Info, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from indexer.errors import ConfigError
from indexer.genesys import GenesysClient
from indexer.live import LiveFeed, event_data
from indexer.outbox import Outbox
from indexer.stats import Statistics

__all__ = ["StatisticsCollector", "readiness", "serve_monitoring"]

log = logging.getLogger(__name__)

PREFIX = "transcript_indexer_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StatisticsCollector(Collector):
    """Exposes a worker's :class:`Statistics`, outbox and token renewals as Prometheus metrics."""

    def __init__(self, stats: Statistics, outbox: Outbox, client: GenesysClient | None = None) -> None:
        self.stats = stats
        self.outbox = outbox
        self.client = client

    def collect(self) -> Iterator[Metric]:
        s = self.stats

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(PREFIX + name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, value=value)

        def labelled(name: str, doc: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
            family = CounterMetricFamily(PREFIX + name, doc, labels=[label])
            for key, value in sorted(counts.items()):
                family.add_metric([key], value)
            return family

        yield labelled("messages_received", "Notifications received, by topic kind", "kind", s.messages)
        yield labelled("conversations_completed", "Conversations closed, by reason", "reason", s.completed)
        yield labelled("conversations_recovered", "Gap recovery outcomes", "outcome", s.recovered)
        yield labelled(
            "live_transcripts_incomplete",
            "Voice conversations closed without their whole transcript from the stream, by why",
            "reason",
            s.live_incomplete,
        )
        yield labelled("redactions", "PII findings redacted, by entity type", "entity_type", s.redactions)
        yield gauge("open_conversations", "Conversations open now", s.open_conversations)
        yield counter("utterances", "Utterances received (new ones)", s.utterances)
        yield counter("duplicate_utterances", "Utterances received again", s.duplicate_utterances)
        yield counter("unusable_utterances", "Utterances without text, not indexed", s.unusable_utterances)
        yield counter("late_messages", "Messages after a conversation was finalized", s.late_messages)
        yield counter("reopened", "Conversations re-opened by a late utterance", s.reopened)
        yield gauge(
            "transcript_backlog", "Transcription messages waiting to be tracked", s.transcript_backlog
        )
        yield counter("transcripts_shed", "Transcription messages not tracked (overload)", s.transcripts_shed)
        yield counter(
            "conversations_shed",
            "Conversations followed no more under overload (recovered)",
            s.conversations_shed,
        )
        yield counter("indexed", "Documents in every sink", s.indexed)
        yield counter("version_conflicts", "Writes answered by a newer or equal version", s.version_conflicts)
        yield counter("bulk_requests", "Write requests to sinks", s.sink_requests)
        yield counter("bulk_items", "Documents sent to sinks", s.sink_items)
        yield counter("bulk_item_failures", "Documents a sink did not take", s.sink_item_failures)
        yield counter("bulk_retries", "Batches or items written again after a backoff", s.sink_retries)
        yield counter("dead_letters", "Inputs and documents kept in the dead-letter store", s.dead_letters)
        usage = self.outbox.usage()
        yield gauge("outbox_documents", "Finished transcripts waiting for the sinks", usage.entries)
        yield gauge("outbox_bytes", "Disk used by the outbox", usage.bytes)
        yield gauge("outbox_max_bytes", "Disk the outbox may use", usage.max_bytes)
        yield gauge("channels", "Notification channels in the pool", s.channels)
        yield gauge("sockets_open", "Notification sockets open", s.sockets_open)
        yield gauge("topics", "Topics subscribed over all channels", s.subscriptions)
        yield gauge("waiting_for_room", "Conversations waiting for a free topic", s.waiting_for_room)
        yield counter("reconnects", "Notification sockets lost or not opened", s.reconnects)
        yield counter("handovers", "Make-before-break channel handovers", s.handovers)
        yield counter(
            "left_to_other_replicas",
            "Conversations closed without their end, left to the replica that saw it (sqs.shared)",
            s.left_to_other_replicas,
        )
        yield counter("sqs_messages", "SQS messages received (a redelivery counts again)", s.sqs_messages)
        yield counter("sqs_requests", "SQS API requests", s.sqs_requests)
        yield counter("live_utterances", "Redacted utterances shown in the live view", s.live_utterances)
        yield counter("live_dropped", "Utterances the live view did not show", s.live_dropped)
        yield counter("live_listener_errors", "Exceptions raised by live listeners", s.live_listener_errors)
        if self.client is not None:
            yield counter("token_renewals", "Access tokens obtained", self.client.token_renewals)
        yield from s.hangup_to_indexed.collect()
        yield from s.stream_lag.collect()


def readiness(stats: Statistics, client: GenesysClient | None) -> dict[str, bool]:
    """The readiness checks by name; ready when all are true."""
    return {
        "token_valid": client is None or client.token_valid,
        "sockets_open": client is None
        or stats.source != "websocket"
        or (stats.channels > 0 and stats.sockets_open >= stats.channels),
        "sink_reachable": stats.sink_available,
    }


#: Seconds between the blank lines that keep a quiet ``/live`` stream open.
LIVE_KEEPALIVE_S = 15.0


def _app(
    registry: CollectorRegistry, stats: Statistics, client: GenesysClient | None, live: LiveFeed | None
) -> Any:
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        checks = readiness(stats, client)
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
        )

    async def live_view(request: Request) -> Response:
        if live is None:
            return JSONResponse({"error": "no live view in this worker"}, status_code=404)
        queue, conversation_id = request.query_params.get("queue"), request.query_params.get("conversation")

        async def lines() -> AsyncIterator[bytes]:
            async with live.watch(queue=queue, conversation_id=conversation_id) as events:
                yield b"\n"  # the stream is open: a watcher knows it is connected
                while True:
                    with trio.move_on_after(LIVE_KEEPALIVE_S):
                        event = await events.receive()
                        yield (json.dumps(event_data(event), ensure_ascii=False) + "\n").encode()
                        continue
                    yield b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/live", live_view, methods=["GET"]),
        ]
    )


async def serve_monitoring(
    listen: str,
    stats: Statistics,
    outbox: Outbox,
    client: GenesysClient | None = None,
    *,
    live: LiveFeed | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the endpoints on ``listen`` (``host:port``) until cancelled.

    Reports the bound base URLs (``["http://host:port"]``) once listening.

    :raises ConfigError: ``http_listen`` cannot be bound.
    """
    registry = CollectorRegistry()
    registry.register(StatisticsCollector(stats, outbox, client))
    # prometheus-client's own: process_* (memory, CPU, open fds), python_info, and the build
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info("transcript_indexer_build", "The worker's version", registry=registry).info(
        {"version": version("transcript-indexer")}
    )
    config = HypercornConfig()
    config.bind = [listen]
    config.accesslog = None
    config.errorlog = logging.getLogger("indexer.monitoring.hypercorn")
    config.graceful_timeout = 1
    app = _app(registry, stats, client, live)
    try:
        await serve(app, config, task_status=task_status)
    except OSError as exc:
        raise ConfigError(f"http_listen {listen} cannot be used: {exc.strerror}") from None
