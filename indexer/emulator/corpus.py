"""The emulator's corpus: NDJSON, one conversation per line.

::

    {"turns": [{"speaker": "customer", "text": "Hi, I'm calling about my bill."},
               {"speaker": "agent", "text": "Sure, can I have your account number?"}],
     "queue": "Billing", "direction": "inbound", "language": "en-US"}

Only ``turns`` is required; ``queue`` defaults to ``General``, ``direction`` to
``inbound``, ``language`` to ``en-US`` and ``media`` to ``voice``. A ``message``
conversation's turns are messages (``message_type``: ``sms``, ``webmessaging``,
``whatsapp``, ``open``), a ``chat``'s are chat lines, an ``email``'s are emails (the first
with ``subject``). A ``callback`` is requested by the customer, routed through the queue,
and the agent dials the customer back (a voice call, transcribed). ``transfer_to`` names
a second queue the conversation is transferred to half-way (voice), ``transfer_type``
``blind`` (default) or ``consult`` (the agent talks to the next agent first).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import attrs

from indexer.errors import ConfigError, MalformedMessage
from indexer.serialization import structure

__all__ = ["CorpusConversation", "Turn", "dump_corpus", "load_corpus"]


@attrs.frozen
class Turn:
    """One turn: who speaks and what they say (written text, with punctuation and case)."""

    speaker: Literal["customer", "agent"]
    text: str


@attrs.frozen
class CorpusConversation:
    """One conversation the emulator plays."""

    turns: tuple[Turn, ...]
    queue: str = "General"
    direction: Literal["inbound", "outbound"] = "inbound"
    language: str = "en-US"
    media: Literal["voice", "callback", "message", "chat", "email"] = "voice"
    transfer_type: Literal["blind", "consult"] = "blind"
    message_type: Literal["sms", "webmessaging", "whatsapp", "open"] | None = None
    subject: str | None = None
    transfer_to: str | None = None


def load_corpus(path: Path) -> list[CorpusConversation]:
    """Read a corpus file.

    :raises ConfigError: the file is missing, or a line is not a valid conversation
        (the message names the line number and the field).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"corpus file {path} does not exist") from None
    conversations = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            conversation = structure(data, CorpusConversation, what="conversation")
        except (ValueError, MalformedMessage) as exc:
            reason = exc.reason if isinstance(exc, MalformedMessage) else "not valid JSON"
            raise ConfigError(f"corpus file {path} line {number}: {reason}") from None
        if not conversation.turns:
            raise ConfigError(f"corpus file {path} line {number}: no turns")
        conversations.append(conversation)
    if not conversations:
        raise ConfigError(f"corpus file {path} holds no conversations")
    return conversations


def dump_corpus(conversations: Iterable[CorpusConversation], path: Path) -> None:
    """Write conversations as a corpus file."""
    from indexer.serialization import unstructure

    with path.open("w", encoding="utf-8") as file:
        for conversation in conversations:
            file.write(json.dumps(unstructure(conversation), ensure_ascii=False) + "\n")
