"""Running the worker against the emulator inside a test."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import trio
from opensearchpy import OpenSearch, helpers

from indexer import hookimpl
from indexer.config import CompletionSettings, Config, GenesysSettings, RecoverySettings, StreamSettings
from indexer.document import TranscriptDocument
from indexer.emulator import CorpusConversation, Emulator
from indexer.plugins import Plugins, get_plugin_manager
from indexer.sinks import WriteResult
from indexer.stats import Statistics
from indexer.worker import run_worker
from tests.installed import PROJECT_ONLY


@attrs.define
class Arrivals:
    """A sink plugin that tells the test when ``expected`` conversations have been written."""

    expected: int
    done: trio.Event = attrs.field(factory=trio.Event)
    seen: set[str] = attrs.field(factory=set)
    name: str = "arrivals"

    @hookimpl(trylast=True)  # last in the sink list: a batch reaches it after OpenSearch
    def transcript_indexer_sinks(self, config: Config) -> list[Arrivals]:
        return [self]

    async def open(self) -> None:
        return None

    async def write(self, documents: Sequence[TranscriptDocument]) -> list[WriteResult]:
        self.seen.update(d.conversation_id for d in documents)
        if len(self.seen) >= self.expected:
            self.done.set()
        return [WriteResult(d.conversation_id) for d in documents]

    async def aclose(self) -> None:
        return None


def indexed_sources(url: str) -> dict[str, dict[str, Any]]:
    """Every document in the ``transcripts`` alias, by ``_id``."""
    client = OpenSearch(hosts=[url])
    client.indices.refresh(index="transcripts")
    return {hit["_id"]: hit["_source"] for hit in helpers.scan(client, index="transcripts")}


def live_config(
    base_url: str,
    corpus: Sequence[CorpusConversation],
    opensearch: dict[str, Any],
    tmp_path: Path,
    *,
    grace_period_s: float = 0.5,
    capture: Path | None = None,
) -> Config:
    """Settings for a worker following every queue of ``corpus`` on the emulator at ``base_url``."""
    return Config(
        genesys=GenesysSettings(
            api_base_url=base_url,
            login_base_url=base_url,
            client_id="emulator-client",
            client_secret="emulator-secret",
            queues=tuple(sorted({c.queue for c in corpus})),
        ),
        completion=CompletionSettings(grace_period_s=grace_period_s),
        stream=StreamSettings(capture_path=str(capture) if capture else None),
        recovery=RecoverySettings(post_call_retry_s=0.2, post_call_wait_s=30),
        state_dir=str(tmp_path / "state"),
        http_listen="127.0.0.1:0",
        plugins={"opensearch": opensearch},
    )


def start_worker(
    nursery: trio.Nursery,
    config: Config,
    *,
    stats: Statistics,
    arrivals: Arrivals,
    extra: Sequence[object] = (),
) -> None:
    """Run the live worker in ``nursery`` with the installed plugins, ``arrivals`` and ``extra``."""
    plugins = Plugins(get_plugin_manager(env=PROJECT_ONLY, extra=[arrivals, *extra]))
    nursery.start_soon(lambda: run_worker(config, plugins, stats=stats, drain_on_signals=False))


async def relay(a: trio.abc.Stream, b: trio.abc.Stream) -> None:
    """Copy bytes both ways between two streams until either side closes."""
    async with trio.open_nursery() as nursery:

        async def pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
            try:
                async for data in source:
                    await sink.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(pipe, a, b)
        nursery.start_soon(pipe, b, a)


async def wait_until_ended(emulator: Emulator, count: int, timeout_s: float = 30) -> None:
    """Until the emulator's simulated clock has seen ``count`` conversations hang up."""
    with trio.fail_after(timeout_s):
        while emulator.status()["ended"] < count:  # noqa: ASYNC110 -- the emulator's simulated clock
            await trio.sleep(0.05)


_REPLACEMENT: Final = re.compile(r"\\\[[A-Z_]+(?:\\ [^\]]*)?\\\]")


def same_or_more_redacted(got: str, expected: str) -> bool:
    """``got`` is ``expected`` with, at most, more of it replaced by ``[ENTITY_TYPE]``s."""
    if got == expected:
        return True
    pattern = _REPLACEMENT.sub(lambda _: "[^\\n]{1,100}?", re.escape(got))
    return re.fullmatch(pattern, expected, re.DOTALL) is not None


def redacted_alike(got: Sequence[str], played: Sequence[str]) -> bool:
    """The indexed texts are the played ones, in order, some of them with more replaced by
    ``[ENTITY_TYPE]``s (chitchat holds names and places too, which the rules redact)."""
    return len(got) == len(played) and all(
        same_or_more_redacted(g, p) for g, p in zip(got, played, strict=True)
    )


def same_conversations(indexed: Sequence[Sequence[str]], played: Sequence[Sequence[str]]) -> bool:
    """Each indexed conversation's texts are one played conversation's, redacted alike
    (:func:`redacted_alike`), one to one."""
    left = list(played)
    for texts in indexed:
        match = next((k for k, candidate in enumerate(left) if redacted_alike(texts, candidate)), None)
        if match is None:
            return False
        left.pop(match)
    return not left
