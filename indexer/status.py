"""What a running worker reports about itself, for ``transcript-indexer status``.

The worker rewrites ``<state_dir>/status.json`` (atomically) every ``STATUS_INTERVAL_S``:
counters, open conversations, outbox depth, channels and topics. Counts
only, never content.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Final

import trio

from indexer.files import replace_synced
from indexer.outbox import Outbox
from indexer.stats import Statistics

__all__ = [
    "STATUS_INTERVAL_S",
    "format_status",
    "format_summary",
    "is_running",
    "read_status",
    "write_status_forever",
]

STATUS_INTERVAL_S: Final = 2.0
#: A status file older than this (s) means the worker is not running.
STALE_AFTER_S: Final = 30.0


def _snapshot(stats: Statistics, outbox: Outbox) -> dict[str, Any]:
    usage = outbox.usage()
    return {
        "time": time.time(),
        "pid": os.getpid(),
        "open_conversations": stats.open_conversations,
        "outbox": {"entries": usage.entries, "bytes": usage.bytes, "max_bytes": usage.max_bytes},
        "channels": stats.channels,
        "topics": stats.subscriptions,
        "waiting_for_room": stats.waiting_for_room,
        "http": stats.http_url,
        **stats.summary(),
    }


def _write(path: Path, data: dict[str, Any]) -> None:
    replace_synced(path, json.dumps(data, indent=1).encode())


async def write_status_forever(path: Path, stats: Statistics, outbox: Outbox) -> None:
    """Rewrite the status file every ``STATUS_INTERVAL_S`` until cancelled, then once more."""
    try:
        while True:
            await trio.to_thread.run_sync(_write, path, _snapshot(stats, outbox))
            await trio.sleep(STATUS_INTERVAL_S)
    finally:
        with trio.move_on_after(2, shield=True):
            await trio.to_thread.run_sync(_write, path, {**_snapshot(stats, outbox), "stopped": True})


def read_status(path: Path) -> dict[str, Any] | None:
    """The last status written, or ``None`` when there is none."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data


def is_running(data: dict[str, Any] | None, now: float) -> bool:
    """The worker that wrote ``data`` is running: it has not stopped, and wrote it lately."""
    if data is None:
        return False
    return not data.get("stopped") and now - float(data.get("time", 0)) < STALE_AFTER_S


def _counts(counts: Any) -> str:
    """``{"ended": 30, "idle": 1}`` as ``ended 30, idle 1`` (``-`` when empty)."""
    if not isinstance(counts, dict) or not counts:
        return "-"
    return ", ".join(f"{key} {value}" for key, value in sorted(counts.items()))


def format_status(data: dict[str, Any] | None, now: float, state_dir: Path) -> str:
    """Lines for a person at a terminal."""
    if data is None:
        return f"worker not running: no status in {state_dir} (no worker has run with this state directory)"
    age = now - float(data.get("time", 0))
    running = is_running(data, now)
    head = (
        f"worker {'running' if running else 'not running'} in {state_dir} "
        f"(pid {data.get('pid')}, status {age:.0f} s old)"
    )
    outbox = data.get("outbox", {})
    lines = [
        head,
        f"open conversations   {data.get('open_conversations', 0)}",
        f"outbox               {outbox.get('entries', 0)} transcripts, {outbox.get('bytes', 0)} bytes",
        f"indexed              {data.get('indexed', 0)}",
        f"dead letters         {data.get('dead_letters', 0)}",
        f"channels             {data.get('channels', 0)} ({data.get('topics', 0)} topics, "
        f"{data.get('waiting_for_room', 0)} conversations waiting for room)",
        f"reconnects           {data.get('reconnects', 0)}, handovers {data.get('handovers', 0)}",
        f"endpoints            {data.get('http') or '-'} (/metrics, /healthz, /readyz)",
        f"completed            {_counts(data.get('completed'))}",
        f"recovered            {_counts(data.get('recovered'))}",
    ]
    return "\n".join(lines)


def format_summary(summary: dict[str, Any]) -> str:
    """:meth:`~indexer.stats.Statistics.summary` as lines for a person at a terminal."""
    return "\n".join(
        [
            f"indexed              {summary.get('indexed', 0)}",
            f"dead letters         {summary.get('dead_letters', 0)}",
            f"messages             {_counts(summary.get('messages'))}",
            f"utterances           {summary.get('utterances', 0)} ({summary.get('duplicate_utterances', 0)} "
            f"duplicates, {summary.get('unusable_utterances', 0)} unusable, "
            f"{summary.get('late_messages', 0)} late messages)",
            f"completed            {_counts(summary.get('completed'))}",
            f"recovered            {_counts(summary.get('recovered'))}",
            f"version conflicts    {summary.get('version_conflicts', 0)}",
            f"sink retries         {summary.get('sink_retries', 0)}",
        ]
    )
