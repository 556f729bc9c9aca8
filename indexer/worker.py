"""The worker: one function owns the nursery in which every task of the flow runs.

::

    source ──Envelope──► detect_completion ──TranscriptDocument──► finalize_transcripts
                              │                                         │ (validate, redact)
                              └──SubscriptionChange──►                  ▼
                                 follow_channels (live)     durable outbox (disk)
                                                                        │
                                                            deliver_transcripts ──► sinks

Channels are bounded, so a slow sink slows the detector, which slows the reader
(backpressure). Closing a channel is how a producer says "done". A drain (SIGTERM,
SIGINT, or the end of a replay file) stops only the source; everything downstream then
finishes what it holds, within ``shutdown_grace_s``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Final

import attrs
import httpx
import trio

from indexer.completion import StreamItem, SubscriptionChange, detect_completion
from indexer.config import Config, shard_queues
from indexer.deadletter import REPLAYABLE, DeadLetter, DeadLetterStore
from indexer.document import TranscriptDocument
from indexer.errors import ConfigError, GenesysError, MalformedMessage, SinkError
from indexer.frames import accept_frame
from indexer.genesys import GenesysClient
from indexer.isolation import open_finalizer
from indexer.journal import Journal
from indexer.live import LiveFeed
from indexer.models import Envelope
from indexer.monitoring import serve_monitoring
from indexer.outbox import Outbox
from indexer.pipeline import Pipeline, deliver_transcripts, finalize_transcripts
from indexer.plugins import Plugins
from indexer.recovery import Gap, RecoveryRequest, recover_transcripts
from indexer.redaction import RuleSet
from indexer.replay import read_replay
from indexer.sealing import Sealer
from indexer.serialization import format_time, parse_envelope, structure
from indexer.sinks import Sink
from indexer.statedir import open_state_dir
from indexer.stats import Statistics
from indexer.status import read_status, write_status_forever
from indexer.stream import follow_channels, open_pool
from indexer.topics import queue_conversations_topic

__all__ = ["build_pipeline", "dead_letter_store", "replay_dead_letters", "run_replay", "run_worker"]

log = logging.getLogger(__name__)

ENVELOPE_BUFFER: Final = 256
DOCUMENT_BUFFER: Final = 64
SUBSCRIPTION_BUFFER: Final = 256
RECOVERY_BUFFER: Final = 256
CLEANUP_TIMEOUT_S: Final = 10.0


@contextlib.asynccontextmanager
async def _open_sinks(config: Config, plugins: Plugins, stats: Statistics) -> AsyncIterator[list[Sink]]:
    """Every sink, opened (settings checked, templates installed when reachable), closed after.

    A sink that cannot be reached yet is logged and marks the worker not ready
    (``stats.sink_available``) until a write succeeds; transcripts wait in the outbox.

    :raises ConfigError: no sink is installed, or a sink's settings are wrong.
    """
    sinks = plugins.sinks(config)
    if not sinks:
        raise ConfigError("no indexing sink is installed (install transcript-indexer-opensearch)")
    log.info("sinks: %s", ", ".join(sink.name for sink in sinks))
    try:
        for sink in sinks:
            try:
                await sink.open()
            except SinkError as exc:
                stats.sink_available = False
                log.warning("sink %s not ready at start-up, the outbox holds transcripts: %s", sink.name, exc)
        yield sinks
    finally:
        for sink in sinks:
            with trio.move_on_after(CLEANUP_TIMEOUT_S, shield=True):
                await sink.aclose()


def build_pipeline(config: Config, plugins: Plugins) -> Pipeline:
    """The validators and redaction rules every plugin contributes, logged once.

    :raises ConfigError: no redaction rule is loaded and ``redaction.allow_unredacted`` is
        not set (transcripts would be indexed in clear), or a ``[plugins.*]`` table names
        no loaded plugin.
    """
    rules = RuleSet(tuple(plugins.redaction_rules(config)), config.redaction.build())
    validators = tuple(plugins.validators(config))
    if not rules.rules and not config.redaction.allow_unredacted:
        raise ConfigError(
            "no redaction rule is loaded (is transcript-indexer-pii installed and not in "
            "INDEXER_DISABLED_PLUGINS?); set redaction.allow_unredacted = true to index unredacted"
        )
    names = sorted(name for name, _ in plugins.pm.list_name_plugin() if name)
    for table in sorted(set(config.plugins) - set(names)):
        raise ConfigError(
            f"config file: [plugins.{table}] names no loaded plugin (loaded: {', '.join(names)}); "
            "a typo, or a plugin not installed or in INDEXER_DISABLED_PLUGINS"
        )
    versions = {name: dist for name, dist, _, _ in plugins.loaded()}
    log.info(
        "transcript-indexer %s; plugins: %s; %d redaction rules (rule set %s): %s; %d validators",
        version("transcript-indexer"),
        ", ".join(f"{n} ({versions[n]})" if versions.get(n, "-") != "-" else n for n in names),
        len(rules.rules),
        rules.version,
        ", ".join(sorted(f"{r.id}@{r.version}" for r in rules.rules)) or "none",
        len(validators),
    )
    if not rules.rules:
        log.warning("redaction.allow_unredacted: transcripts are indexed UNREDACTED")
    return Pipeline(validators=validators, rules=rules)


async def _run_flow(
    config: Config,
    plugins: Plugins,
    stats: Statistics,
    *,
    start_source: Callable[..., Awaitable[None]],
    pipeline: Pipeline,
    sinks: list[Sink],
    queue_names: dict[str, str],
    live: bool,
    drain_on_signals: bool,
    sealer: Sealer,
    recover: Callable[..., Awaitable[None]] | None = None,
    client: GenesysClient | None = None,
    documents: Sequence[TranscriptDocument] = (),
    dead_letters: DeadLetterStore | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The flow of the module docstring, from ``start_source`` to ``sinks``.

    :param documents: finished transcripts to finalize and index besides what the source
        brings (dead letters sent back).
    :param dead_letters: the store to use; default, the one in ``config.state_dir``.
    """
    dead_letters = dead_letters or dead_letter_store(config, stats, sealer)
    await trio.to_thread.run_sync(dead_letters.expire)
    outbox = Outbox(Path(config.state_dir) / "outbox", max_bytes=config.outbox_max_bytes, sealer=sealer)
    waiting = outbox.load()
    if waiting:
        log.info("delivering %d transcripts left in the outbox by the previous run", len(waiting))
    journal = (
        Journal(
            Path(config.state_dir) / "journal",
            sealer=sealer,
            legacy=Path(config.state_dir) / "journal.ndjson",  # the single file of earlier versions
        )
        if live
        else None
    )
    restored = await _restore(journal, dead_letters) if journal is not None else []
    try:
        async with (
            open_finalizer(pipeline, time_limit_s=config.redaction.time_limit_s) as finalizer,
            trio.open_nursery() as nursery,
        ):
            envelope_send, envelope_recv = trio.open_memory_channel[StreamItem](ENVELOPE_BUFFER)
            document_send, document_recv = trio.open_memory_channel[TranscriptDocument](DOCUMENT_BUFFER)
            change_send, change_recv = trio.open_memory_channel[SubscriptionChange](SUBSCRIPTION_BUFFER)
            source_scope = trio.CancelScope()

            def drain() -> None:
                source_scope.cancel()
                nursery.cancel_scope.deadline = min(
                    nursery.cancel_scope.deadline, trio.current_time() + config.shutdown_grace_s
                )

            # The status file and the endpoints report until delivery, the last task, is done.
            reporting = (trio.CancelScope(), trio.CancelScope(), trio.CancelScope(), trio.CancelScope())
            feed = None
            if live:
                feed = LiveFeed(plugins.live_listeners(config), finalizer.redact_live, stats)

                async def run_feed() -> None:
                    with reporting[2]:
                        await feed.run()

                nursery.start_soon(run_feed)

            async def report_status() -> None:
                with reporting[0]:
                    await write_status_forever(Path(config.state_dir) / "status.json", stats, outbox)

            async def deliver() -> None:
                await deliver_transcripts(
                    outbox,
                    sinks,
                    dead_letters,
                    stats,
                    service_now_ms=client.server_now_ms if client is not None else None,
                    give_up_after_s=None if live else config.shutdown_grace_s,  # replay ends
                )
                for scope in reporting:
                    scope.cancel()

            async def serve_endpoints(
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
            ) -> None:
                with reporting[1]:
                    await serve_monitoring(
                        config.http_listen,
                        stats,
                        outbox,
                        client,
                        live=feed if config.http_live else None,
                        task_status=task_status,
                    )

            nursery.start_soon(report_status)
            if live and config.http_listen:
                stats.http_url = (await nursery.start(serve_endpoints))[0]
                log.info("metrics on %s/metrics, health on /healthz and /readyz", stats.http_url)
            nursery.start_soon(deliver)
            nursery.start_soon(
                functools.partial(
                    finalize_transcripts,
                    document_recv,
                    finalizer.finalize,
                    outbox,
                    dead_letters,
                    stats,
                    concurrency=int(finalizer.concurrency),
                    live=feed,
                )
            )
            if documents:
                nursery.start_soon(_send_all, documents, document_send.clone())
            recovery_send: trio.MemorySendChannel[RecoveryRequest] | None = None
            if recover is not None:
                recovery_send, recovery_recv = trio.open_memory_channel[RecoveryRequest](RECOVERY_BUFFER)
                nursery.start_soon(recover, recovery_recv, document_send.clone(), outbox.indexed())
            nursery.start_soon(
                lambda: detect_completion(
                    envelope_recv,
                    document_send,
                    settings=config.completion,
                    dead_letters=dead_letters,
                    stats=stats,
                    subscriptions=change_send if live else None,
                    queue_names=queue_names,
                    journal=journal,  # live: open conversations stay in it at a drain
                    restored=restored,
                    recovery=recovery_send,
                    live=feed,
                    shared=config.source == "sqs" and config.sqs.shared,
                    service_now_ms=client.server_now_ms if client is not None else None,
                    # control before data on the live sockets only (see indexer.completion)
                    max_transcript_backlog=config.completion.max_transcript_backlog
                    if live and config.source == "websocket"
                    else None,
                )
            )

            async def source(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                with source_scope:
                    await start_source(
                        envelope_send, change_recv, dead_letters, outbox, task_status=task_status
                    )

            await nursery.start(source)
            if drain_on_signals:

                async def drain_on_signal() -> None:
                    with reporting[3]:
                        await _drain_on_signal(drain, source_scope)

                nursery.start_soon(drain_on_signal)
            task_status.started()
    finally:
        log.info("worker stopped: %s", stats.summary())


@contextlib.contextmanager
def _reaching(config: Config) -> Iterator[None]:
    """Genesys Cloud that cannot be reached at start-up (after the client's retries) is the
    settings' fault or the network's: one line naming them, not a traceback."""
    try:
        yield
    except httpx.TransportError as exc:
        url = config.genesys.login_base_url if config.genesys else "?"
        raise GenesysError(
            f"cannot reach Genesys Cloud at {url} (GENESYS_REGION, GENESYS_LOGIN_BASE_URL, "
            f"GENESYS_API_BASE_URL): {type(exc).__name__}"
        ) from None


def _log_downtime(state_dir: Path) -> None:
    """Say how long no worker ran with ``state_dir``, from the last status the previous run
    wrote (every ``STATUS_INTERVAL_S``): the time it was down, as it was."""
    previous = read_status(state_dir / "status.json")
    if previous is None or "time" not in previous:
        log.info("first run with the state directory %s", state_dir)
        return
    last = float(previous["time"])
    how = "stopped" if previous.get("stopped") else "last reported (it did not stop cleanly)"
    log.info(
        "the previous run %s at %s: down for about %.0f s",
        how,
        format_time(datetime.fromtimestamp(last, UTC)),
        max(0.0, time.time() - last),
    )


def _sqs_source(config: Config, stats: Statistics) -> Callable[..., Awaitable[None]]:
    """The SQS source (:mod:`indexer.sqs`): an EventBridge rule's queue, no subscriptions."""
    from indexer.sqs import follow_queue

    async def source(
        envelopes: trio.MemorySendChannel[StreamItem],
        changes: trio.MemoryReceiveChannel[SubscriptionChange],
        dead_letters: DeadLetterStore,
        outbox: Outbox,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await follow_queue(
            config.sqs,
            envelopes,
            changes,
            dead_letters,
            stats=stats,
            shared=outbox if config.sqs.shared else None,
            task_status=task_status,
        )

    return source


async def _websocket_source(
    client: GenesysClient, config: Config, queue_names: dict[str, str], stats: Statistics
) -> Callable[..., Awaitable[None]]:
    """The notification channels' source: the pool for the queues' conversation topics
    created, its stream (:func:`~indexer.stream.follow_channels`) to start."""
    pool = await open_pool(client, (queue_conversations_topic(q) for q in queue_names), config.stream)

    async def source(
        envelopes: trio.MemorySendChannel[StreamItem],
        changes: trio.MemoryReceiveChannel[SubscriptionChange],
        dead_letters: DeadLetterStore,
        outbox: Outbox,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await follow_channels(
            client,
            pool,
            envelopes,
            changes,
            settings=config.stream,
            stats=stats,
            dead_letters=dead_letters,
            lookback_s=config.recovery.lookback_s if config.recovery.enabled else None,
            task_status=task_status,
        )

    return source


def dead_letter_store(config: Config, stats: Statistics, sealer: Sealer) -> DeadLetterStore:
    """The dead-letter store of ``config.state_dir``, with its configured bounds."""
    return DeadLetterStore(
        Path(config.state_dir) / "dead-letters.ndjson",
        stats,
        max_bytes=config.dead_letters_max_bytes,
        retention_days=config.dead_letters_retention_days,
        sealer=sealer,
    )


async def _send_all(
    documents: Sequence[TranscriptDocument], send: trio.MemorySendChannel[TranscriptDocument]
) -> None:
    async with send:
        for document in documents:
            await send.send(document)


async def _restore(journal: Journal, dead_letters: DeadLetterStore) -> list[Envelope]:
    """The journal's frames of open conversations, parsed. A frame that no longer parses
    (damage, or a stricter model since) is dead-lettered, and a conversation none of whose
    frames parse is marked finished in the journal: moved aside, not replayed at every start."""
    restored, readable, unreadable = [], set(), set()
    for conversation_id, frame in journal.load():
        try:
            restored.append(parse_envelope(frame))
            readable.add(conversation_id)
        except MalformedMessage as exc:
            unreadable.add(conversation_id)
            await dead_letters.add("journal_unreadable", exc.reason, frame, conversation_id=conversation_id)
    for conversation_id in unreadable - readable:
        journal.finalized(conversation_id)
    return restored


async def _drain_on_signal(drain: Callable[[], None], source_scope: trio.CancelScope) -> None:
    """Wait for SIGTERM/SIGINT, then drain: stop the source and bound the rest by a deadline.

    Later signals while draining (a terminal's Ctrl-C reaches every process of the group,
    then a supervisor sends SIGTERM) are logged, not fatal; runs until cancelled."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        draining = False
        async for signum in signals:
            name = signal.Signals(signum).name
            if draining:
                log.info("received %s again: still draining", name)
                continue
            log.info("received %s, draining", name)
            drain()
            draining = True


async def run_worker(
    config: Config,
    plugins: Plugins,
    *,
    stats: Statistics | None = None,
    drain_on_signals: bool = True,
    http: httpx.AsyncClient | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> Statistics:
    """Run the live worker against Genesys Cloud until SIGTERM/SIGINT or cancellation.

    Resolves the configured queues, creates the pool of notification channels for their
    conversation topics, then runs the stream (:func:`~indexer.stream.follow_channels`),
    detector, recovery and indexer.
    Reports started once the WebSockets are open.

    :raises ConfigError: a setting is missing, a queue does not exist, or no redaction
        rule is loaded (see :func:`build_pipeline`).
    :raises AuthenticationError: Genesys Cloud refused the credentials.
    """
    if config.genesys is None:
        raise ConfigError("GENESYS_REGION is not set (or GENESYS_API_BASE_URL and GENESYS_LOGIN_BASE_URL)")
    stats = stats or Statistics()
    pipeline = build_pipeline(config, plugins)  # before any call to Genesys
    with open_state_dir(config.state_dir, config.state_keys) as sealer:  # before any call to Genesys too
        _log_downtime(Path(config.state_dir))
        async with (
            _open_sinks(config, plugins, stats) as sinks,  # before Genesys too: no channel without a sink
            httpx.AsyncClient(timeout=30.0) if http is None else contextlib.nullcontext(http) as client_http,
        ):
            client = GenesysClient(client_http, config.genesys)
            with _reaching(config):
                queue_names = shard_queues(await client.resolve_queues(config.genesys.queues), config.shard)
            log.info(
                "following %d queues%s", len(queue_names), f" (shard {config.shard})" if config.shard else ""
            )
            source = (
                _sqs_source(config, stats)
                if config.source == "sqs"
                else await _websocket_source(client, config, queue_names, stats)
            )

            await _run_flow(
                config,
                plugins,
                stats,
                start_source=source,
                pipeline=pipeline,
                sinks=sinks,
                queue_names=queue_names,
                live=True,
                drain_on_signals=drain_on_signals,
                sealer=sealer,
                recover=(
                    lambda requests, documents, indexed: recover_transcripts(
                        client,
                        requests,
                        documents,
                        settings=config.recovery,
                        stats=stats,
                        queue_names=queue_names,
                        follow_ups_path=Path(config.state_dir) / "post-call-follow-ups.json",
                        indexed=indexed,
                    )
                )
                if config.recovery.enabled
                else None,
                client=client,
                task_status=task_status,
            )
    return stats


async def run_replay(
    config: Config,
    plugins: Plugins,
    path: Path,
    *,
    stats: Statistics | None = None,
    progress: Callable[[int], object] | None = None,
) -> Statistics:
    """Run the same flow over captured envelopes (NDJSON) and return at the end of the file.

    Every conversation still open at the end is flushed (reason ``ended`` when its end
    signals arrived, else ``stream_end``). Queue events name queues by id only (the SDK's
    queue reference has an optional name, which real events leave out): when Genesys
    Cloud settings are configured, the configured queues are resolved first, as ``run``
    does, so documents carry queue names; without them names are ``null``.

    :param progress: called with the bytes of each line read (for a progress bar).
    :raises ConfigError: a configured queue does not exist, or no redaction rule is loaded.
    """
    stats = stats or Statistics()
    pipeline = build_pipeline(config, plugins)
    with open_state_dir(config.state_dir, config.state_keys) as sealer:
        return await _replay(config, plugins, path, pipeline, stats, progress, sealer)


async def _replay(
    config: Config,
    plugins: Plugins,
    path: Path,
    pipeline: Pipeline,
    stats: Statistics,
    progress: Callable[[int], object] | None,
    sealer: Sealer,
) -> Statistics:
    queue_names: dict[str, str] = {}
    if config.genesys is not None:
        async with httpx.AsyncClient(timeout=30.0) as http:
            with _reaching(config):
                queue_names = await GenesysClient(http, config.genesys).resolve_queues(config.genesys.queues)
    else:
        log.info("no Genesys Cloud settings: queue names stay unknown (null) in replayed documents")

    async def source(
        envelopes: trio.MemorySendChannel[Envelope | Gap],
        changes: trio.MemoryReceiveChannel[SubscriptionChange],
        dead_letters: DeadLetterStore,
        outbox: Outbox,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        await read_replay(path, envelopes, stats=stats, dead_letters=dead_letters, progress=progress)

    async with _open_sinks(config, plugins, stats) as sinks:
        await _run_flow(
            config,
            plugins,
            stats,
            start_source=source,
            pipeline=pipeline,
            sinks=sinks,
            queue_names=queue_names,
            live=False,
            drain_on_signals=False,
            sealer=sealer,
        )
    return stats


#: The state directory, under the worker's, in which dead letters are sent back through
#: the pipeline: its own lock, outbox and journal, so it runs beside a running worker.
REPLAY_DIR: Final = "dead-letter-replay"


async def replay_dead_letters(
    config: Config, plugins: Plugins, letters: Sequence[DeadLetter], *, stats: Statistics | None = None
) -> dict[str, str]:
    """Send ``letters`` (kinds in :data:`~indexer.deadletter.REPLAYABLE`) back through the
    pipeline loaded now; returns each one's outcome by id, also recorded in the store.

    Documents are finalized again (validators, redaction, verification), except
    ``sink_rejected`` ones, redacted and verified already, which go to the sinks as they
    are; ``document_failed`` frames are tracked again. Outcomes: ``delivered`` (every sink
    holds this version or a newer one), ``dead-lettered again: <kind>: <reason>`` (stored
    as a new dead letter), or ``waiting in the outbox: <sink error>`` (after
    ``shutdown_grace_s`` of sink failures; delivered by the next replay). The flow runs
    in ``<state_dir>/dead-letter-replay`` with its own lock, beside a running worker; new
    dead letters go to the worker's store.

    :raises ConfigError: a letter's kind cannot be replayed, or its payload is not what its
        kind holds; a setting is wrong (see :func:`build_pipeline`).
    """
    stats = stats or Statistics()
    pipeline = build_pipeline(config, plugins)
    documents: list[TranscriptDocument] = []
    finished: list[TranscriptDocument] = []
    frames: list[str] = []
    for letter in letters:
        if letter.kind not in REPLAYABLE:
            raise ConfigError(
                f"dead letter {letter.id} ({letter.kind}) holds one frame, not a conversation: "
                f"only {', '.join(sorted(REPLAYABLE))} can be replayed"
            )
        try:
            if letter.kind == "document_failed":
                held = letter.payload.get("frames") if isinstance(letter.payload, dict) else None
                if not isinstance(held, list) or not all(isinstance(f, str) for f in held):
                    raise MalformedMessage("no frames")
                frames += held
            else:
                document = structure(letter.payload, TranscriptDocument, what="payload")
                (finished if letter.kind == "sink_rejected" else documents).append(document)
        except MalformedMessage as exc:
            raise ConfigError(
                f"dead letter {letter.id} ({letter.kind}): unreadable payload: {exc.reason}"
            ) from None
    work_dir = Path(config.state_dir) / REPLAY_DIR
    with open_state_dir(work_dir, config.state_keys) as sealer:
        store = dead_letter_store(config, stats, sealer)
        before = {letter.id for letter in store.entries()}
        outbox = Outbox(work_dir / "outbox", max_bytes=config.outbox_max_bytes, sealer=sealer)
        outbox.load()
        for document in finished:
            await outbox.put(document)

        async def source(
            envelopes: trio.MemorySendChannel[Envelope | Gap],
            changes: trio.MemoryReceiveChannel[SubscriptionChange],
            dead_letters: DeadLetterStore,
            outbox: Outbox,
            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
        ) -> None:
            task_status.started()
            async with envelopes:
                for frame in frames:
                    await accept_frame(frame, envelopes, stats=stats, dead_letters=dead_letters)

        failure: str | None = None
        try:
            async with _open_sinks(config, plugins, stats) as sinks:
                await _run_flow(
                    attrs.evolve(config, state_dir=str(work_dir)),
                    plugins,
                    stats,
                    start_source=source,
                    pipeline=pipeline,
                    sinks=sinks,
                    queue_names={},
                    live=False,
                    drain_on_signals=False,
                    sealer=sealer,
                    documents=documents,
                    dead_letters=store,
                )
        except SinkError as exc:
            failure = str(exc)
        again = {
            letter.conversation_id: f"{letter.kind}: {letter.reason}"
            for letter in store.entries()
            if letter.id not in before
        }
    outcomes = {}
    for letter in letters:
        if letter.conversation_id in again:
            outcomes[letter.id] = f"dead-lettered again: {again[letter.conversation_id]}"
        elif failure is not None:
            outcomes[letter.id] = f"waiting in the outbox: {failure}"
        else:
            outcomes[letter.id] = "delivered"
        store.record_outcome(letter.id, outcomes[letter.id])
    return outcomes
