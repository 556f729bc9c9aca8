"""``python -m indexer`` is ``transcript-indexer``."""

from indexer.cli import main

raise SystemExit(main())
