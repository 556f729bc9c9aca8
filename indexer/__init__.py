"""transcript-indexer: complete, redacted Genesys Cloud transcripts in OpenSearch.

Plugin authors need :data:`hookimpl` and the types named in :mod:`indexer.hookspecs`.
"""

from __future__ import annotations

from indexer.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]

__version__ = "0.1.0"
