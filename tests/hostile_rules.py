"""Redaction rules that misbehave, for the isolation tests (module level: they are pickled
into the redaction worker processes)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import attrs

from indexer.redaction import Finding


@attrs.frozen
class Misbehaving:
    """A rule that, on text holding ``trigger``, does ``what``: ``sleep`` (3 s), ``hang``,
    ``junk`` (returns non-findings), ``interrupt`` (KeyboardInterrupt), ``exit`` (SystemExit)."""

    what: str
    trigger: str = "trigger"
    id: str = "test.misbehaving"
    entity_type: str = "TEST"
    version: str = "1"

    def find(self, text: str) -> Iterable[Finding]:
        if self.trigger not in text:
            return []
        if self.what == "sleep":
            time.sleep(3)
            return []
        if self.what == "hang":
            while True:
                time.sleep(1)
        junk: list[Any] = [1, "not a finding"]
        if self.what == "junk":
            return junk
        if self.what == "interrupt":
            raise KeyboardInterrupt
        raise SystemExit(3)
