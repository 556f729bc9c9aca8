"""Plugins installed beside this repository's own, kept out of its tests.

A compliance team may install its own rule plugin into the environment the tests run in;
its rules would change redactions and rule sets the tests assert. ``conftest.py`` adds
every such entry point to ``INDEXER_DISABLED_PLUGINS`` for the run (and the processes the
tests start); tests that build a plugin manager with an environment of their own pass
:data:`PROJECT_ONLY`.
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import Final

__all__ = ["PROJECT_DISTRIBUTIONS", "PROJECT_ONLY", "foreign_plugins"]

#: The distributions of this repository.
PROJECT_DISTRIBUTIONS: Final = frozenset(
    {
        "transcript-indexer",
        "transcript-indexer-pii",
        "transcript-indexer-opensearch",
        "transcript-indexer-example-rules",
    }
)


def foreign_plugins() -> list[str]:
    """Entry points of the ``transcript_indexer`` group that other distributions installed."""
    return sorted(
        {
            entry.name
            for entry in importlib.metadata.entry_points(group="transcript_indexer")
            if entry.dist is None
            or re.sub(r"[-_.]+", "-", entry.dist.name).lower() not in PROJECT_DISTRIBUTIONS
        }
    )


#: An environment for ``get_plugin_manager(env=...)`` that loads this repository's plugins only.
PROJECT_ONLY: Final = {"INDEXER_DISABLED_PLUGINS": ",".join(foreign_plugins())}
