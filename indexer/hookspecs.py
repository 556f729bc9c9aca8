"""Every hook a plugin can implement.

Hooks are synchronous and called **once, at start-up**; each *contributes objects* that
the worker then uses for every conversation (or, for live listeners, every utterance). No
hook is called per event. A plugin is a
module or object with functions named after these specs, decorated with
:data:`hookimpl`, published under the entry-point group ``transcript_indexer``::

    [project.entry-points.transcript_indexer]
    my_rules = "my_package.rules"

Implementations may accept fewer arguments than the spec (pluggy's opt-in arguments).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from indexer.config import Config
    from indexer.live import LiveListener
    from indexer.pipeline import Validator
    from indexer.redaction import RedactionRule
    from indexer.sinks import Sink

__all__ = ["PROJECT", "hookimpl", "hookspec"]

#: The pluggy project name and entry-point group.
PROJECT = "transcript_indexer"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def transcript_indexer_redaction_rules(config: Config) -> Iterable[RedactionRule]:
    """Contribute redaction rules.

    Called once at start-up. Every rule from every plugin is applied to every text field
    of every transcript (utterance text and each word), then every rule re-scans the
    redacted document; a rule that raises, or a finding that survives, sends the
    transcript to the dead-letter store instead of the index (redaction fails closed).

    :param config: the worker settings; read your own table with
        ``config.plugin_settings("<name>")``.
    :return: rules satisfying :class:`indexer.redaction.RedactionRule`.
    """
    raise NotImplementedError


@hookspec
def transcript_indexer_validators(config: Config) -> Iterable[Validator]:
    """Contribute validators.

    Called once at start-up. Each validator sees every finished transcript *before*
    redaction; a non-empty list of problems sends the transcript to the dead-letter
    store with those problems as the reason, and it is not indexed.

    :param config: the worker settings.
    :return: validators satisfying :class:`indexer.pipeline.Validator`.
    """
    raise NotImplementedError


@hookspec
def transcript_indexer_sinks(config: Config) -> Iterable[Sink]:
    """Contribute indexing sinks.

    Called once at start-up. The worker opens every sink, then writes each batch of
    redacted transcripts to all of them, and closes them at shutdown. At least one sink
    must be loaded.

    :param config: the worker settings.
    :return: sinks satisfying :class:`indexer.sinks.Sink`.
    :raises indexer.errors.ConfigError: when the sink's own settings are missing or invalid.
    """
    raise NotImplementedError


@hookspec
def transcript_indexer_live_listeners(config: Config) -> Iterable[LiveListener]:
    """Contribute listeners to the live view (:mod:`indexer.live`).

    Called once at start-up. Each listener's ``on_utterance(utterance)`` is then called
    with every :class:`~indexer.live.LiveUtterance`, redacted, in arrival order, in a
    worker thread (never on the event loop): a voice utterance as it arrives, a digital
    conversation's messages once it is indexed. Sequence numbers per conversation show
    gaps (an utterance not shown). An exception is logged and counted
    (``live_listener_errors_total``) and the listener goes on receiving.

    :param config: the worker's settings; a plugin's own are ``config.plugin_settings(name)``.
    :return: listeners satisfying :class:`indexer.live.LiveListener`.
    """
    raise NotImplementedError
