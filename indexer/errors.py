"""Every exception the worker raises on purpose, in one tree.

::

    IndexerError                  base of everything below
    ├── ConfigError               a setting is missing or invalid (CLI: one line, exit code 2)
    ├── MalformedMessage          a notification or corpus line that cannot be parsed;
    │                             counted and kept in the dead-letter store, never fatal
    ├── UnusedTopic               a well-formed notification of a topic the worker does not
    │                             use (an EventBridge rule's analytics detail events): counted
    ├── GenesysError              Genesys Cloud answered with an error we cannot retry
    │   ├── AuthenticationError   the token endpoint refused the client credentials
    │   └── StreamClosed          the notification WebSocket closed or went silent
    ├── PluginError               a plugin contributed something unusable
    │   └── RedactionFailed       a redaction rule raised; the transcript is dead-lettered,
    │       │                     never indexed (fails closed)
    │       └── ResidualPII       the verification re-scan still found PII after redaction;
    │                             the transcript is quarantined with the rule ids
    └── SinkError                 a sink could not write a batch and gave up

Third-party exceptions are translated at the module that calls the library
(``raise ... from exc``); context is added with ``add_note`` rather than wrapping.
"""

from __future__ import annotations

import re

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "GenesysError",
    "IndexerError",
    "MalformedMessage",
    "PluginError",
    "RedactionFailed",
    "ResidualPII",
    "SinkError",
    "StreamClosed",
    "UnusedTopic",
    "error_code",
]


class IndexerError(Exception):
    """Base class of the worker's own errors."""


class ConfigError(IndexerError):
    """A setting is missing or invalid.

    The message is one line that names the setting (environment variable or TOML key).
    """


class MalformedMessage(IndexerError):
    """A message could not be parsed into a wire model.

    :param reason: one line saying which field is wrong; never contains message values.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnusedTopic(IndexerError):
    """A notification of a known Genesys topic the worker does not use (yet): counted by
    kind, neither processed nor dead-lettered.

    :param kind: the topic kind (:func:`indexer.topics.topic_kind`), e.g. ``detail``.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(f"a {kind} notification, not used")
        self.kind = kind


class GenesysError(IndexerError):
    """Genesys Cloud answered with an error that retrying will not fix, or a 429 or 5xx
    that the client's retries did not get past (callers may try again later).

    :param status: the HTTP status code, or 0 when there was no HTTP response.
    """

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(GenesysError):
    """``POST /oauth/token`` refused the client credentials (reference §2.3)."""


class StreamClosed(GenesysError):
    """The notification WebSocket closed, or sent nothing within the heartbeat timeout."""


class PluginError(IndexerError):
    """A plugin contributed an object that does not do what its hook promises."""


class RedactionFailed(PluginError):
    """Redaction raised, or the verification re-scan still found PII.

    The message names the rule ids, never the values.
    """


class ResidualPII(RedactionFailed):
    """The verification re-scan found PII in a redacted transcript.

    :ivar rule_ids: the rules that still match (never the values).
    """

    def __init__(self, rule_ids: list[str], reason: str = "verification re-scan still matches rules") -> None:
        super().__init__(f"{reason}: {', '.join(rule_ids)}")
        self.rule_ids = rule_ids
        self.reason = reason

    def __reduce__(self) -> tuple[type[ResidualPII], tuple[list[str], str]]:
        """Pickled with its own arguments (it crosses from a redaction worker process)."""
        return (ResidualPII, (self.rule_ids, self.reason))


class SinkError(IndexerError):
    """A sink gave up on a batch after its retries."""


_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,80}")


def error_code(value: object) -> str:
    """An error code from a server's answer (``invalid_client``, ``security_exception``), fit
    for a message; anything else (a free-text or echoed body, which can hold a bearer
    token a proxy copied) is left out as ``(answer not shown)``."""
    text = str(value or "")
    if not text:
        return ""
    return text if _CODE.fullmatch(text) else "(answer not shown)"
