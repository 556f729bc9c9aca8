"""Replay throughput: the whole pipeline per CPU-second beside its ceilings, in one run.

``make bench`` (``BENCH_CONVERSATIONS``, default 1000; ``BENCH_ROUNDS`` runs of the
pipeline, default 3, the best printed as the ceilings are). The demo's conversations (chitchat
turns with Faker PII, every media type) laid out by the emulator's scenario builder, their
notification frames in due order, written to a replay file. Measured on those frames:

- **ceilings**: ``json.loads`` of every frame, ``orjson.loads`` when installed, our
  ``parse_envelope`` alone: frames per CPU-second;
- **memory per open conversation**: every frame of the voice conversations parsed and
  applied to the tracker's states, none closed (as when every call is still going on),
  measured with ``tracemalloc``, beside the issue's ceiling of 30 KB at 20 utterances;
- **the pipeline**: ``run_replay`` end to end (parse, track, complete, redact and verify in
  worker processes, outbox, a discard sink that takes every batch): transcription
  messages per CPU-second of this process and its worker processes, wall time, and the
  pipeline's share of each ceiling;
- **a long call**: the corpus's turns joined into one conversation of 3,200 utterances
  (and one of 400 beside it), validated, redacted and verified once in this process
  (``Pipeline.finalize``), beside ``redaction.time_limit_s``: redaction's cost should grow
  with a conversation's length, not faster.

Not a test: it asserts nothing and prints its figures, and the issue's target (10,000
transcription messages per CPU-second) beside them.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.config import Config
from indexer.document import TranscriptDocument
from indexer.errors import MalformedMessage, UnusedTopic
from indexer.hookspecs import hookimpl
from indexer.models import ConversationEvent, TranscriptionMessage
from indexer.pipeline import Pipeline
from indexer.plugins import Plugins, get_plugin_manager
from indexer.redaction import turns_document
from indexer.serialization import parse_envelope
from indexer.sinks import WriteResult
from indexer.tracker import ConversationState
from indexer.worker import build_pipeline, run_replay

if TYPE_CHECKING:
    from indexer.emulator.corpus import CorpusConversation

COUNT = int(os.environ.get("BENCH_CONVERSATIONS", "1000"))
TARGET = 10_000
#: Utterances of the long call and of a short one beside it (:func:`call_s`).
LONG_CALL_UTTERANCES = 3_200
SHORT_CALL_UTTERANCES = 400
#: Runs of the pipeline; the best is printed beside the ceilings (best of 3 runs each).
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


class DiscardSink:
    """Takes every batch and keeps nothing: the pipeline's cost without a node."""

    name = "discard"

    def __init__(self) -> None:
        self.documents = 0

    async def open(self) -> None:
        pass

    async def write(self, documents: Sequence[TranscriptDocument]) -> Sequence[WriteResult]:
        self.documents += len(documents)
        return [WriteResult(d.conversation_id) for d in documents]

    async def aclose(self) -> None:
        pass


class DiscardPlugin:
    def __init__(self, sink: DiscardSink) -> None:
        self.sink = sink

    @hookimpl
    def transcript_indexer_sinks(self, config: Config) -> list[DiscardSink]:
        return [self.sink]


def corpus(count: int) -> list[CorpusConversation]:
    """``count`` demo conversations (chitchat turns, a quarter with Faker PII)."""
    # Imported here: the redaction processes import this module as their ``__main__``, and
    # should load what a worker's do (``indexer.cli``), not Faker and the emulator.
    from indexer.demo import build_demo_corpus

    conversations, _ = build_demo_corpus(count, seed=16, pii_share=0.25)
    return conversations


def frames(corpus: Sequence[CorpusConversation]) -> list[str]:
    """The notification frames of ``corpus``, in due order."""
    from indexer.emulator.scenario import build_scenario

    rng = random.Random(16)
    events = []
    for index, conversation in enumerate(corpus):
        scenario = build_scenario(
            conversation, start_ms=1_700_000_000_000 + index * 2000, rng=rng, organization_id="bench-org"
        )
        events += scenario.events
    return [frame.text for frame in sorted(events, key=lambda frame: frame.due_ms)]


def cpu_s() -> tuple[float, float]:
    """CPU seconds of this process (all threads) and of its ended children (worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), children.ru_utime + children.ru_stime


def per_cpu_second(work: Callable[[str], Any], texts: Sequence[str], rounds: int = 3) -> float:
    """Texts per CPU-second through ``work``, best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for text in texts:
            work(text)
        best = min(best, time.process_time() - started)
    return len(texts) / best


def open_conversation_bytes(texts: Sequence[str]) -> tuple[float, float, float, float]:
    """Memory the tracker holds for open conversations (``tracemalloc``: the parsed values
    it keeps and its own state): bytes per conversation without its utterances, bytes per
    utterance (measured by dropping them), the same once closed (the utterances let go, as
    in the re-open window), and the mean utterances of a voice conversation."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    states: dict[str, ConversationState] = {}
    for text in texts:
        try:
            body = parse_envelope(text).event_body
        except (MalformedMessage, UnusedTopic):
            continue
        if isinstance(body, ConversationEvent):
            conversation_id = body.id
        elif isinstance(body, TranscriptionMessage):
            conversation_id = body.conversation_id
        else:
            continue
        state = states.setdefault(conversation_id, ConversationState(conversation_id, 0.0, 0.0))
        if isinstance(body, ConversationEvent):
            state.apply_conversation(body, 0.0)
        else:
            state.apply_transcription(body, 0.0)
    held = tracemalloc.get_traced_memory()[0] - before
    sessions = [session for state in states.values() for session in state.sessions.values()]
    utterances = sum(len(session.utterances) for session in sessions)
    for state in states.values():
        state.let_go()
    closed = tracemalloc.get_traced_memory()[0] - before
    for session in sessions:
        session.utterances.clear()
    without = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    voice = sum(1 for state in states.values() if state.sessions)
    return (
        without / max(len(states), 1),
        (held - without) / max(utterances, 1),
        (closed - without) / max(utterances, 1),
        utterances / max(voice, 1),
    )


def call_s(
    conversations: Sequence[CorpusConversation], pipeline: Pipeline, utterances: int, first: int = 0
) -> float:
    """CPU seconds of :meth:`Pipeline.finalize` on one call of ``utterances`` utterances:
    the turns of ``conversations`` in turn from the ``first``, 1 s apart (:func:`turns_document`)."""
    turns = [(turn.speaker, turn.text) for conversation in conversations for turn in conversation.turns]
    document = turns_document("call", [turns[(first + i) % len(turns)] for i in range(utterances)])
    before = time.process_time()
    pipeline.finalize(document)
    return time.process_time() - before


def main() -> int:
    conversations = corpus(COUNT)
    texts = frames(conversations)
    transcriptions = sum('"topicName":"v2.conversations.' in t and '.transcription"' in t for t in texts)
    size_mb = sum(len(t.encode()) for t in texts) / 1e6
    print(
        f"Replay benchmark: {COUNT} demo conversations, {len(texts):,} frames "
        f"({transcriptions:,} transcription messages), {size_mb:.1f} MB\n"
    )
    ceilings = {"json.loads": per_cpu_second(json.loads, texts)}
    try:
        import orjson
    except ImportError:
        print("(orjson not installed: its ceiling is left out)")
    else:
        ceilings["orjson.loads"] = per_cpu_second(orjson.loads, texts)
    ceilings["parse_envelope"] = per_cpu_second(parse_envelope, texts)
    fixed, per_utterance, per_closed_utterance, utterances = open_conversation_bytes(texts)
    at_20 = fixed + 20 * per_utterance
    print(
        f"memory per open conversation: {fixed / 1000:.1f} KB and {per_utterance / 1000:.2f} KB "
        f"per utterance ({utterances:.1f} utterances in a voice conversation here): "
        f"{at_20 / 1000:.1f} KB at 20 utterances, ceiling 30 KB {'ok' if at_20 <= 30_000 else 'MISSED'}; "
        f"closed, in its re-open window (utterances let go, the journal holds them): "
        f"{(fixed + 20 * per_closed_utterance) / 1000:.1f} KB at 20 utterances\n"
    )
    config = Config()
    pipeline = build_pipeline(
        config, Plugins(get_plugin_manager(env={"INDEXER_DISABLED_PLUGINS": "opensearch"}))
    )
    # the first call in a process loads what its rules load lazily (libphonenumber's metadata)
    call_s(conversations, pipeline, SHORT_CALL_UTTERANCES, first=LONG_CALL_UTTERANCES + SHORT_CALL_UTTERANCES)
    long_s = call_s(conversations, pipeline, LONG_CALL_UTTERANCES)
    short_s = call_s(conversations, pipeline, SHORT_CALL_UTTERANCES, first=LONG_CALL_UTTERANCES)
    print(
        f"a long call: {LONG_CALL_UTTERANCES:,} utterances validated, redacted and verified in "
        f"{long_s:.2f} CPU s ({long_s / LONG_CALL_UTTERANCES * 1000:.2f} ms an utterance; "
        f"{SHORT_CALL_UTTERANCES} in {short_s:.2f} s, {short_s / SHORT_CALL_UTTERANCES * 1000:.2f} ms an "
        f"utterance), redaction.time_limit_s {config.redaction.time_limit_s:g} s\n"
    )

    import trio

    runs = []  # (own CPU s, redaction processes' CPU s, wall s, documents, dead letters), one per round
    with tempfile.TemporaryDirectory() as folder:
        replay_file = Path(folder) / "frames.ndjson"
        replay_file.write_text("".join(f"{t}\n" for t in texts), encoding="utf-8")
        for round_ in range(ROUNDS):
            config = Config(state_dir=str(Path(folder) / f"state-{round_}"))
            sink = DiscardSink()
            manager = get_plugin_manager(
                env={"INDEXER_DISABLED_PLUGINS": "opensearch"}, extra=[DiscardPlugin(sink)]
            )
            plugins = Plugins(manager)
            (own_before, children_before), wall_before = cpu_s(), time.perf_counter()
            stats = trio.run(run_replay, config, plugins, replay_file)
            (own, children), wall = cpu_s(), time.perf_counter() - wall_before
            own, children = own - own_before, children - children_before
            runs.append((own, children, wall, sink.documents, stats.dead_letters))
    own, children, wall, documents, dead_letters = min(runs, key=lambda run: run[0] + run[1])
    cpu = own + children
    pipeline = transcriptions / cpu
    print(f"{'what':<44}{'per CPU-second':>16}{'pipeline share':>16}")
    for name, rate in ceilings.items():
        print(f"{name + ' (frames)':<44}{rate:>16,.0f}{pipeline / rate:>15.1%}")
    print(
        f"{'pipeline (transcription messages)':<44}{pipeline:>16,.0f}"
        f"{'':>16}  target >= {TARGET:,} {'ok' if pipeline >= TARGET else 'MISSED'}"
    )
    every = ", ".join(f"{transcriptions / (run[0] + run[1]):,.0f}" for run in runs)
    print(
        f"\npipeline, best of {len(runs)} runs ({every}): {documents} documents indexed, "
        f"{dead_letters} dead letters; {cpu:.1f} CPU s ({own:.1f} s this process: reading, parsing, "
        f"tracking, outbox; {children:.1f} s its redaction processes, their start included), "
        f"{wall:.1f} s wall"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
