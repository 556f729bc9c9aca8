"""The ``transcript-indexer`` command line.

::

    transcript-indexer run [--config FILE] [--capture FILE]
    transcript-indexer replay FILE [--config FILE] [--json]
    transcript-indexer emulate (--corpus FILE | --chitchat N) [--speed X] [--host H] [--port N]
                               [--public-url URL]
    transcript-indexer demo [--conversations N]
    transcript-indexer dev [--conversations N] [--speed X] [--interval S] [--state-dir DIR]
    transcript-indexer check [--config FILE] [--json]
    transcript-indexer search [TEXT] [--phrase] [--speaker S] [--queue Q] [--since T] [--until T]
                              [--limit N] [--page N | --after CURSOR] [--json | --csv] [--explain]
    transcript-indexer show CONVERSATION_ID [--json]
    transcript-indexer watch [--queue Q] [--conversation ID] [--json]
    transcript-indexer status [--config FILE] [--json]
    transcript-indexer dead-letters list [--kind K] [--since T] [--limit N] [--json]
    transcript-indexer dead-letters show ID [--payload] [--json]
    transcript-indexer dead-letters replay (ID ... | --kind K)
    transcript-indexer plugins list
    transcript-indexer plugins check (FILE | -) [--config FILE] [--json]

Exit codes: 0 success, 1 runtime failure (for ``plugins check``: a sample failed
redaction or verification; for ``dead-letters replay``: an entry was not delivered),
2 a setting or input is missing or invalid (one line naming
it on stderr, no traceback), 3 (``status``) no worker runs with the state directory.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path

import attrs
import trio
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from indexer.config import Config, load_config, parse_shard
from indexer.deadletter import DeadLetter, DeadLetterStore
from indexer.errors import AuthenticationError, ConfigError, IndexerError, error_code
from indexer.logs import LOG_FORMATS, configure_logging
from indexer.plugins import Plugins, get_plugin_manager

__all__ = ["main"]

#: The exit code of ``status`` when no worker runs (the LSB init-script convention).
NOT_RUNNING = 3

log = logging.getLogger("indexer")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transcript-indexer",
        description="Index complete, redacted Genesys Cloud voice transcripts into OpenSearch.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('transcript-indexer')}")
    parser.add_argument(
        "--log-level", default=os.environ.get("INDEXER_LOG_LEVEL", "INFO"), help="default INFO"
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("INDEXER_LOG_FORMAT", "auto"),
        help="json lines, console lines, or auto: console at a terminal, else json",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="follow Genesys Cloud and index transcripts until stopped")
    run.add_argument("--config", type=Path, help="TOML settings file (environment variables win)")
    run.add_argument("--capture", type=Path, help="append every received frame to this NDJSON file")
    run.add_argument("--shard", help="i/n: follow the i-th (0-based) of n shares of the queues")

    replay = commands.add_parser("replay", help="index captured notification envelopes (NDJSON)")
    replay.add_argument("file", type=Path)
    replay.add_argument("--config", type=Path, help="TOML settings file (environment variables win)")
    replay.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    emulate = commands.add_parser("emulate", help="serve a Genesys Cloud emulator playing a corpus")
    played = emulate.add_mutually_exclusive_group(required=True)
    played.add_argument("--corpus", type=Path, help="NDJSON, one conversation per line")
    played.add_argument(
        "--chitchat",
        type=int,
        metavar="N",
        help="play N chitchat-dataset conversations, a quarter with Faker PII (the demo extra)",
    )
    emulate.add_argument("--speed", type=float, default=1.0, help="time compression factor (default 1)")
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument(
        "--public-url", help="base URL clients use, when not the bound address (e.g. http://emulator:8080)"
    )
    emulate.add_argument("--port", type=int, default=0, help="0 = any free port")
    emulate.add_argument("--heartbeat-interval", type=float, default=30.0, help="seconds (real time)")
    emulate.add_argument(
        "--interval", type=float, default=10.0, help="simulated s between conversation starts"
    )
    emulate.add_argument(
        "--start-delay", type=float, default=1.0, help="real s before the first conversation"
    )
    emulate.add_argument(
        "--sqs-queue-url", help="also send every event to this SQS queue, as EventBridge does"
    )
    emulate.add_argument(
        "--sqs-endpoint-url", help="the SQS endpoint (a local server); credentials from AWS_*"
    )
    emulate.add_argument(
        "--sqs-max-delay", type=int, default=0, help="delay each SQS message 0 to N s (reordering)"
    )
    emulate.add_argument(
        "--transcript-delay",
        type=float,
        default=0.0,
        help="simulated s after hang-up before a call's post-call transcript is ready (Genesys: minutes)",
    )
    emulate.add_argument(
        "--wait-for-subscriber",
        action="store_true",
        help="start the first conversation --start-delay s after a worker subscribes to a queue",
    )
    emulate.add_argument("--seed", type=int, default=1)
    emulate.add_argument("--token-ttl", type=int, default=86399, help="expires_in of tokens, real s")
    emulate.add_argument("--channel-ttl", type=float, default=86400.0, help="channel lifetime, real s")
    emulate.add_argument(
        "--duplicate-rate", type=float, default=0.0, help="fault: share of messages sent twice"
    )
    emulate.add_argument("--reorder-rate", type=float, default=0.0, help="fault: share of messages reordered")
    emulate.add_argument(
        "--late-utterance-rate",
        type=float,
        default=0.0,
        help="fault: share of calls with an utterance after the end",
    )

    demo = commands.add_parser("demo", help="the main job end to end on real conversations, on this machine")
    demo.add_argument("--conversations", type=int, default=500)
    demo.add_argument("--speed", type=float, default=100.0)
    demo.add_argument("--state-dir", type=Path, default=Path("state/demo"))

    dev = commands.add_parser(
        "dev", help="a local set-up until Ctrl-C: embedded node, emulator playing live calls, and the worker"
    )
    dev.add_argument("--conversations", type=int, default=100)
    dev.add_argument("--speed", type=float, default=10.0, help="the emulator's time compression (default 10)")
    dev.add_argument(
        "--interval", type=float, default=20.0, help="simulated s between conversation starts (default 20)"
    )
    dev.add_argument("--state-dir", type=Path, default=Path("state/dev"))

    search = commands.add_parser("search", help="find indexed conversations by what was said")
    search.add_argument("text", nargs="?", help="words said in one utterance (all of them)")
    search.add_argument("--phrase", action="store_true", help="the words as an exact phrase")
    search.add_argument("--speaker", choices=["agent", "customer"], help="said by this speaker")
    search.add_argument("--queue", help="queue name")
    search.add_argument("--since", help="started at or after (ISO-8601 date or time, UTC)")
    search.add_argument("--until", help="started before (ISO-8601 date or time, UTC)")
    search.add_argument("--limit", type=int, default=20, help="conversations shown (default 20)")
    search.add_argument("--page", type=int, default=1, help="the page of --limit results, from 1")
    search.add_argument("--after", help="the results after this cursor (search prints it: 'more: --after')")
    shape = search.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="one JSON object per conversation (NDJSON)")
    shape.add_argument("--csv", action="store_true", help="CSV with a header row")
    search.add_argument("--explain", action="store_true", help="print the query DSL and exit")
    search.add_argument("--config", type=Path, help="TOML settings file (for plugins.opensearch)")

    checking = commands.add_parser(
        "check", help="check settings, plugins, state directory, Genesys Cloud and sinks, then exit"
    )
    checking.add_argument("--config", type=Path, help="TOML settings file (environment variables win)")
    checking.add_argument("--json", action="store_true", help="one JSON object per check")

    show = commands.add_parser("show", help="one indexed conversation, read as a chat log")
    show.add_argument("conversation_id")
    show.add_argument("--json", action="store_true", help="the indexed document as JSON")
    show.add_argument("--config", type=Path, help="TOML settings file (for plugins.opensearch)")

    watch = commands.add_parser("watch", help="follow conversations as they happen (redacted), until Ctrl-C")
    watch.add_argument("--queue", help="only conversations of this queue (its name, in any case)")
    watch.add_argument("--conversation", help="only this conversation")
    watch.add_argument("--json", action="store_true", help="one JSON object per utterance")
    watch.add_argument("--config", type=Path, help="TOML settings file (for state_dir)")

    status = commands.add_parser("status", help="what the worker using this state directory is doing")
    status.add_argument("--config", type=Path, help="TOML settings file (for state_dir)")
    status.add_argument("--json", action="store_true", help="print the status as JSON")

    letters = commands.add_parser(
        "dead-letters", help="list, show and send back what could not be indexed (the dead-letter store)"
    )
    letter_actions = letters.add_subparsers(dest="action", required=True)
    listing = letter_actions.add_parser("list", help="counts by kind, then the newest entries (no payloads)")
    listing.add_argument("--kind", action="append", help="only this kind (repeatable)")
    listing.add_argument("--since", help="stored at or after (ISO-8601 date or time, UTC)")
    listing.add_argument(
        "--limit", type=int, default=20, help="entries shown, newest last (0 = all; default 20)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per entry (no payloads)")
    listing.add_argument("--config", type=Path, help="TOML settings file (for state_dir)")
    showing = letter_actions.add_parser(
        "show", help="one entry; its payload (often unredacted) only if asked"
    )
    showing.add_argument("id", help="the entry's id, as list prints it")
    showing.add_argument("--payload", action="store_true", help="print the payload too (may hold PII)")
    showing.add_argument("--json", action="store_true", help="as one JSON object")
    showing.add_argument("--config", type=Path, help="TOML settings file (for state_dir)")
    sending = letter_actions.add_parser(
        "replay", help="send entries back through the pipeline loaded now; records each outcome"
    )
    sending.add_argument("ids", nargs="*", help="entry ids, as list prints them")
    sending.add_argument("--kind", action="append", help="every entry of this kind not yet delivered")
    sending.add_argument("--config", type=Path, help="TOML settings file (environment variables win)")

    plugins = commands.add_parser("plugins", help="inspect loaded plugins and try their redaction rules")
    actions = plugins.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="each loaded plugin: distribution, module file, hooks it implements")
    check = actions.add_parser(
        "check", help="redact sample text or a corpus with every loaded rule; print findings and results"
    )
    check.add_argument("file", help="one sample per line: text, or a corpus conversation (JSON); - = stdin")
    check.add_argument("--config", type=Path, help="TOML settings file ([redaction.operators], plugins)")
    check.add_argument("--json", action="store_true", help="one JSON object per sample")
    return parser


def _first_indexer_error(exc: BaseException) -> IndexerError | None:
    found = _first_of(exc, IndexerError)
    return found if isinstance(found, IndexerError) else None


def _load(path: Path | None, *, need_genesys: bool) -> Config:
    return load_config(path, os.environ, need_genesys=need_genesys)


def _plugins() -> Plugins:
    return Plugins(get_plugin_manager())


def _first_of(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` itself or the first exception of ``kind`` in its (nested) groups."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_of(inner, kind)
            if found is not None:
                return found
    return None


@contextlib.contextmanager
def _os_errors(errnos: tuple[int, ...], explain: Callable[[OSError], IndexerError]) -> Iterator[None]:
    """An ``OSError`` with one of ``errnos`` anywhere in what the block raises (unless an
    error of ours says more) becomes ``explain(it)``: one line, no traceback."""
    try:
        yield
    except BaseException as exc:
        found = _first_of(exc, OSError)
        if isinstance(found, OSError) and found.errno in errnos and _first_indexer_error(exc) is None:
            raise explain(found) from None
        raise


def _bind_errors(setting: str, address: str) -> contextlib.AbstractContextManager[None]:
    """A listening socket that cannot be opened is the named setting's fault."""
    return _os_errors(
        (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES),
        lambda found: ConfigError(f"{setting} {address}: cannot listen there ({found.strerror})"),
    )


def _disk_errors(state_dir: str) -> contextlib.AbstractContextManager[None]:
    """A state directory that became full or read-only while running stops the worker with
    one line: what was written stays (the journal resumes open conversations, the outbox
    delivers what it holds) once there is room again."""
    return _os_errors(
        (errno.ENOSPC, errno.EROFS, errno.EDQUOT),
        lambda found: IndexerError(
            f"INDEXER_STATE_DIR {state_dir}: {found.strerror}; the worker stopped with nothing lost: "
            "make room and start it again (open conversations resume from the journal)"
        ),
    )


def _positive(option: str, value: float, *, allow_zero: bool = False) -> None:
    """:raises ConfigError: ``value`` is not above zero (or at least zero)."""
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(
            f"{option} must be {'zero or more' if allow_zero else 'more than zero'}, not {value:g}"
        )


def _command(args: argparse.Namespace) -> int:
    if args.command == "run":
        from indexer.worker import run_worker

        config = _load(args.config, need_genesys=True)
        if args.capture:
            config = attrs.evolve(config, stream=attrs.evolve(config.stream, capture_path=str(args.capture)))
        if args.shard:
            parse_shard(args.shard)
            config = attrs.evolve(config, shard=args.shard)
        with (
            _bind_errors("http_listen (INDEXER_HTTP_LISTEN)", config.http_listen),
            _disk_errors(config.state_dir),
        ):
            trio.run(functools.partial(run_worker, config, _plugins()))
        return 0
    if args.command == "replay":
        from indexer.worker import run_replay

        if not args.file.is_file():
            raise ConfigError(f"replay file {args.file} does not exist")
        config = _load(args.config, need_genesys=False)
        # A bar at a terminal (bytes of the file read); nothing otherwise (tqdm's disable=None).
        # Log lines are written through tqdm meanwhile, above the bar, not into it.
        with (
            logging_redirect_tqdm(),
            tqdm(
                total=args.file.stat().st_size, desc="replay", unit="B", unit_scale=True, disable=None
            ) as bar,
        ):
            stats = trio.run(
                functools.partial(run_replay, config, _plugins(), args.file, progress=bar.update)
            )
        from indexer.status import format_summary

        print(json.dumps(stats.summary()) if args.json else format_summary(stats.summary()))
        return 0
    if args.command == "emulate":
        from indexer.emulator import EmulatorSettings, load_corpus, serve_emulator
        from indexer.emulator.eventbridge import SqsTarget

        _positive("--speed", args.speed)
        _positive("--interval", args.interval, allow_zero=True)
        _positive("--transcript-delay", args.transcript_delay, allow_zero=True)
        if args.chitchat is not None:
            _positive("--chitchat", args.chitchat)

        if args.chitchat is not None:
            from indexer.demo import build_demo_corpus

            try:
                corpus, _ = build_demo_corpus(args.chitchat)
            except ValueError as exc:
                raise ConfigError(f"--chitchat: {exc}") from None
        else:
            corpus = load_corpus(args.corpus)
        settings = EmulatorSettings(
            speed=args.speed,
            heartbeat_interval_s=args.heartbeat_interval,
            start_interval_s=args.interval,
            start_delay_s=args.start_delay,
            seed=args.seed,
            token_ttl_s=args.token_ttl,
            channel_ttl_s=args.channel_ttl,
            duplicate_rate=args.duplicate_rate,
            reorder_rate=args.reorder_rate,
            late_utterance_rate=args.late_utterance_rate,
            public_url=args.public_url,
            wait_for_subscriber=args.wait_for_subscriber,
            transcript_delay_s=args.transcript_delay,
            sqs=SqsTarget(
                args.sqs_queue_url,
                endpoint_url=args.sqs_endpoint_url,
                duplicate_rate=args.duplicate_rate,
                max_delay_s=args.sqs_max_delay,
            )
            if args.sqs_queue_url
            else None,
        )
        with _bind_errors("--host/--port", f"{args.host}:{args.port}"):
            trio.run(functools.partial(serve_emulator, corpus, settings, host=args.host, port=args.port))
        return 0
    if args.command == "demo":
        from indexer.demo import run_demo

        _positive("--conversations", args.conversations)
        _positive("--speed", args.speed)

        return run_demo(conversations=args.conversations, speed=args.speed, state_dir=args.state_dir)
    if args.command == "dev":
        from indexer.demo import run_dev

        _positive("--conversations", args.conversations)
        _positive("--speed", args.speed)
        _positive("--interval", args.interval, allow_zero=True)
        return run_dev(
            conversations=args.conversations,
            speed=args.speed,
            interval_s=args.interval,
            state_dir=args.state_dir,
        )
    if args.command in ("search", "show"):
        return _search(args)
    if args.command == "watch":
        return _watch(args)
    if args.command == "status":
        import time

        from indexer.status import format_status, is_running, read_status

        state_dir = Path(_load(args.config, need_genesys=False).state_dir)
        data = read_status(state_dir / "status.json")
        now = time.time()
        if args.json:
            print(json.dumps({**(data or {}), "state_dir": str(state_dir), "running": is_running(data, now)}))
        else:
            print(format_status(data, now, state_dir))
        return 0 if is_running(data, now) else NOT_RUNNING
    if args.command == "check":
        from indexer.preflight import format_checks, run_checks

        config = _load(args.config, need_genesys=True)
        checks = trio.run(functools.partial(run_checks, config, _plugins()))
        if args.json:
            for c in checks:
                print(json.dumps(attrs.asdict(c)))
        else:
            print(format_checks(checks))
        return 0 if all(c.ok for c in checks) else 1
    if args.command == "dead-letters":
        return _dead_letters(args)
    if args.command == "plugins" and args.action == "list":
        for loaded in _plugins().loaded():
            print("\t".join(loaded))
        return 0
    if args.command == "plugins":
        return _check(args)
    raise AssertionError(args.command)


def _check(args: argparse.Namespace) -> int:
    from indexer.redaction import RuleSet
    from indexer.rulecheck import check_samples, format_result, format_summary

    config = _load(args.config, need_genesys=False)
    rules = RuleSet(tuple(_plugins().redaction_rules(config)), config.redaction.build())
    if args.file == "-":
        lines: Iterable[str] = sys.stdin
    else:
        try:
            lines = Path(args.file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"plugins check: cannot read {args.file} ({exc.strerror})") from None
    results = []
    for result in check_samples(lines, rules):
        results.append(result)
        print(format_result(result, as_json=args.json))
    if not args.json:
        print(format_summary(results, rules))
    return 0 if all(result.ok for result in results) else 1


def _dead_letters(args: argparse.Namespace) -> int:
    from indexer.sealing import check_keys
    from indexer.stats import Statistics

    config = _load(args.config, need_genesys=False)
    state_dir = Path(config.state_dir)
    entries: list[DeadLetter] = []
    outcomes: dict[str, dict[str, str]] = {}
    if state_dir.is_dir():
        store = DeadLetterStore(
            state_dir / "dead-letters.ndjson", Statistics(), sealer=check_keys(state_dir, config.state_keys)
        )
        entries, outcomes = store.entries(), store.outcomes()
    if args.action == "list":
        return _list_dead_letters(args, entries, outcomes, state_dir)
    if args.action == "show":
        entry = _find_letter(entries, args.id, f"dead-letters show: in {state_dir}")
        record: dict[str, object] = {
            "id": entry.id,
            "time": entry.time,
            "kind": entry.kind,
            "conversation_id": entry.conversation_id,
            "reason": entry.reason,
            "file": entry.file,
            "replayed": outcomes.get(entry.id),
        }
        if args.payload:
            record["payload"] = entry.payload
        if args.json:
            print(json.dumps(record, ensure_ascii=False))
        else:
            for key, value in record.items():
                if key == "payload":
                    text = (
                        value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
                    )
                    print(f"payload:\n{text}")
                elif key == "replayed":
                    print(f"replayed: {_outcome(value) if isinstance(value, dict) else 'no'}")
                else:
                    print(f"{key}: {value if value is not None else '-'}")
        return 0
    return _replay_dead_letters(args, config, entries, outcomes)


def _watch(args: argparse.Namespace) -> int:
    """Print the running worker's live view (``GET /live``) until Ctrl-C or the worker stops."""
    import time

    import httpx

    from indexer.live import format_event
    from indexer.status import is_running, read_status

    state_dir = Path(_load(args.config, need_genesys=False).state_dir)
    data = read_status(state_dir / "status.json")
    if data is None or not is_running(data, time.time()):
        error = f"no worker runs with the state directory {state_dir}"
        print(f"transcript-indexer: error: {error}", file=sys.stderr)
        return NOT_RUNNING
    if not data.get("http"):
        raise ConfigError(
            f"the worker in {state_dir} serves no endpoints yet (it is starting, or http_listen is empty)"
        )
    params = {k: v for k, v in (("queue", args.queue), ("conversation", args.conversation)) if v}
    shown: dict[str, int] = {}  # conversation → last sequence shown
    timeout = httpx.Timeout(10, read=None)
    try:
        with httpx.stream("GET", f"{data['http']}/live", params=params, timeout=timeout) as answer:
            if answer.status_code == 404:
                raise ConfigError(f"the worker in {state_dir} has the live view switched off (http_live)")
            print(f"watching {answer.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
            for line in answer.iter_lines():
                if line.strip():  # else a keep-alive
                    print(line if args.json else format_event(json.loads(line), shown), flush=True)
    except httpx.TransportError as exc:
        print(
            f"transcript-indexer: the live view closed ({type(exc).__name__}): the worker stopped",
            file=sys.stderr,
        )
        return 1
    print("transcript-indexer: the live view closed: the worker stopped", file=sys.stderr)
    return 1


def _find_letter(entries: list[DeadLetter], wanted: str, where: str) -> DeadLetter:
    """The one entry whose id starts with ``wanted``.

    :raises ConfigError: none or several do.
    """
    matches = [e for e in entries if e.id.startswith(wanted)] if wanted else []
    if len(matches) != 1:
        raise ConfigError(f"{where}: {len(matches) or 'no'} entries with id {wanted!r}")
    return matches[0]


def _outcome(record: dict[str, str]) -> str:
    return f"{record['outcome']} ({record['time']})"


def _list_dead_letters(
    args: argparse.Namespace, entries: list[DeadLetter], outcomes: dict[str, dict[str, str]], state_dir: Path
) -> int:
    from collections import Counter

    from indexer.serialization import format_time, parse_time

    _positive("--limit", args.limit, allow_zero=True)
    if args.kind:
        entries = [e for e in entries if e.kind in args.kind]
    if args.since:
        try:
            since = format_time(parse_time(args.since))
        except ValueError:
            raise ConfigError(f"--since {args.since!r} is not an ISO-8601 date or time") from None
        entries = [e for e in entries if e.time >= since]
    shown = entries[-args.limit :] if args.limit else entries
    if args.json:
        for e in shown:
            print(
                json.dumps(
                    {
                        "id": e.id,
                        "time": e.time,
                        "kind": e.kind,
                        "conversation_id": e.conversation_id,
                        "reason": e.reason,
                        "file": e.file,
                        "replayed": outcomes.get(e.id),
                    },
                    ensure_ascii=False,
                )
            )
        return 0
    if not entries:
        print(f"no dead letters in {state_dir}")
        return 0
    counts = Counter(e.kind for e in entries)
    print(f"{len(entries)} dead letters in {state_dir}")
    print(f"{'kind':<20}{'count':>7}  {'oldest':<26}newest")
    for kind, count in sorted(counts.items()):
        times = [e.time for e in entries if e.kind == kind]
        print(f"{kind:<20}{count:>7}  {min(times):<26}{max(times)}")
    print(f"\n{'the newest ' + str(len(shown)) if len(shown) < len(entries) else 'all'}:")
    for e in shown:
        replayed = outcomes.get(e.id)
        print(
            f"{e.id}  {e.time}  {e.kind:<18} {e.conversation_id or '-'}  {e.reason}"
            + (f"  [replayed: {_outcome(replayed)}]" if replayed else "")
        )
    return 0


def _replay_dead_letters(
    args: argparse.Namespace, config: Config, entries: list[DeadLetter], outcomes: dict[str, dict[str, str]]
) -> int:
    from indexer.worker import replay_dead_letters

    where = f"dead-letters replay: in {config.state_dir}"
    chosen = [_find_letter(entries, wanted, where) for wanted in args.ids]
    for kind in args.kind or ():
        chosen += [
            e for e in entries if e.kind == kind and outcomes.get(e.id, {}).get("outcome") != "delivered"
        ]
    if not args.ids and not args.kind:
        raise ConfigError("dead-letters replay: name entry ids or --kind")
    if not chosen:
        print("nothing to replay")
        return 0
    with _disk_errors(config.state_dir):
        results = trio.run(functools.partial(replay_dead_letters, config, _plugins(), chosen))
    for letter_id, outcome in results.items():
        print(f"{letter_id}  {outcome}")
    delivered = sum(outcome == "delivered" for outcome in results.values())
    print(f"{delivered} of {len(results)} delivered")
    return 0 if delivered == len(results) else 1


def _search(args: argparse.Namespace) -> int:
    """``search`` and ``show``: both read the index the OpenSearch plugin writes."""
    try:
        from indexer_opensearch import sink_from_settings
        from indexer_opensearch.search import (
            SearchQuery,
            build_query,
            format_conversation,
            format_results,
            get_conversation,
            run_search,
        )
    except ImportError:
        raise ConfigError(
            f"{args.command} needs the OpenSearch plugin: pip install transcript-indexer-opensearch"
        ) from None
    from opensearchpy.exceptions import NotFoundError, OpenSearchException

    query = None
    if args.command == "search":
        try:
            query = SearchQuery(
                text=args.text,
                phrase=args.phrase,
                speaker=args.speaker,
                queue=args.queue,
                since=args.since,
                until=args.until,
                limit=args.limit,
                page=args.page,
                after=args.after,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if args.explain:
            print(json.dumps(build_query(query), indent=2))
            return 0
    config = _load(args.config, need_genesys=False)
    sink = sink_from_settings(dict(config.plugin_settings("opensearch")), dict(os.environ))
    try:
        if query is None:
            document = get_conversation(sink.client, sink.alias, args.conversation_id)
            if document is None:
                raise ConfigError(f"no conversation {args.conversation_id!r} in {sink.alias!r}")
            print(json.dumps(document, ensure_ascii=False) if args.json else format_conversation(document))
            return 0
        total, results, more = run_search(sink.client, sink.alias, query)
    except NotFoundError:
        raise ConfigError(
            f"OpenSearch at OPENSEARCH_URL has no index or alias {sink.alias!r} "
            "(nothing indexed yet, or another plugins.opensearch.alias)"
        ) from None
    except OpenSearchException as exc:
        status, code = getattr(exc, "status_code", ""), error_code(getattr(exc, "error", type(exc).__name__))
        print(
            f"transcript-indexer: error: OpenSearch at OPENSEARCH_URL: {status} {code}".rstrip(),
            file=sys.stderr,
        )
        return 1
    output = format_results(
        total,
        results,
        as_json=args.json,
        as_csv=args.csv,
        bold=sys.stdout.isatty(),
        more=more,
    )
    if output:
        print(output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        configure_logging(args.log_level, args.log_format, sys.stderr)
    except ValueError as exc:
        print(f"transcript-indexer: error: --log-level/--log-format: {exc}", file=sys.stderr)
        return 2
    try:
        return _command(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): no traceback, and no second error when Python
        # flushes standard output at exit (the recipe of the ``signal`` module's docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except BaseException as exc:
        if _first_of(exc, KeyboardInterrupt) is not None:
            return 130  # Ctrl-C inside a nursery (trio raises it in a group)
        error = _first_indexer_error(exc)
        if error is None:
            raise
        print(f"transcript-indexer: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError | AuthenticationError) else 1
