"""Access to the language-neutral contracts in ``schemas/`` (shipped as ``indexer/_schemas``)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["load_schema"]


def load_schema(name: str) -> Any:
    """The parsed JSON file ``schemas/<name>``.

    Looks in the installed wheel first, then in the source tree (editable installs).

    :raises FileNotFoundError: no such schema file.
    """
    packaged = resources.files("indexer") / "_schemas" / name
    if packaged.is_file():
        return json.loads(packaged.read_text(encoding="utf-8"))
    source = Path(__file__).resolve().parent.parent / "schemas" / name
    return json.loads(source.read_text(encoding="utf-8"))
