"""Shared fixtures: samples, settings and loopback servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "samples"


def sample(name: str) -> dict[str, Any]:
    """A golden wire sample from ``schemas/samples``."""
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return data


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A fresh state directory for dead letters."""
    path = tmp_path / "state"
    path.mkdir()
    return path
