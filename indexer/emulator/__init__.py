"""A Genesys Cloud emulator for tests, demos and load tests (see :mod:`.server`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import trio

from indexer.emulator.corpus import CorpusConversation, Turn, dump_corpus, load_corpus
from indexer.emulator.server import Emulator, EmulatorSettings

__all__ = [
    "CorpusConversation",
    "Emulator",
    "EmulatorSettings",
    "Turn",
    "dump_corpus",
    "load_corpus",
    "ready_line",
    "serve_emulator",
]


def ready_line(emulator: Emulator) -> dict[str, object]:
    """What ``emulate`` prints when it is ready: where to connect and as whom."""
    return {
        "api_base_url": emulator.base_url,
        "login_base_url": emulator.base_url,
        "client_id": emulator.settings.client_id,
        "client_secret": emulator.settings.client_secret,
        "queues": sorted(set(emulator.queues.values())),
    }


async def serve_emulator(
    corpus: Sequence[CorpusConversation], settings: EmulatorSettings, *, host: str, port: int
) -> None:
    """Serve the emulator until cancelled; print one JSON line on stdout when ready."""
    emulator = Emulator(list(corpus), settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: emulator.run(host=host, port=port, task_status=task_status))
        sys.stdout.write(json.dumps(ready_line(emulator)) + "\n")
        sys.stdout.flush()
