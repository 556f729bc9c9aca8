"""The official Genesys Cloud SDK (``purecloudplatformclientv2``) as the reference for payloads.

``round_trip(data, model)`` deserializes ``data`` through the SDK model named ``model``
(e.g. ``"QueueConversationEventTopicConversation"``, ``"list[Recording]"``) and
serializes it back: a key the SDK does not declare is dropped, and an enum value it does
not know becomes ``"outdated_sdk_version"``, so ``normalised(round_trip(x)) ==
normalised(x)`` says that ``x`` is a payload the real service could send.
"""

from __future__ import annotations

import re
import warnings
from datetime import datetime
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from PureCloudPlatformClientV2 import ApiClient  # type: ignore[import-untyped]

_CLIENT = ApiClient()
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$")


def round_trip(data: Any, model: str) -> Any:
    """``data`` after deserialization by the SDK model and serialization back to JSON data."""
    obj = _CLIENT._ApiClient__deserialize(data, model)
    return _CLIENT.sanitize_for_serialization(obj)


def normalised(data: Any) -> Any:
    """``data`` with every ISO-8601 time as epoch ms (the SDK rewrites time formats)."""
    if isinstance(data, dict):
        return {key: normalised(value) for key, value in data.items()}
    if isinstance(data, list):
        return [normalised(item) for item in data]
    if isinstance(data, str) and _ISO.match(data):
        return round(datetime.fromisoformat(data).timestamp() * 1000)
    return data


def differences(data: Any, model: str) -> list[str]:
    """Where ``data`` and its SDK round trip differ: ``$.path: ours != SDK's`` (empty if none)."""
    found: list[str] = []

    def walk(ours: Any, theirs: Any, path: str) -> None:
        if isinstance(ours, dict) and isinstance(theirs, dict):
            for key in ours.keys() | theirs.keys():
                if key not in theirs:
                    found.append(f"{path}.{key}: not in the SDK model")
                elif key not in ours:
                    found.append(f"{path}.{key}: added by the SDK")
                else:
                    walk(ours[key], theirs[key], f"{path}.{key}")
        elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
            for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
                walk(a, b, f"{path}[{index}]")
        elif ours != theirs:
            found.append(f"{path}: {ours!r} != {theirs!r}")

    walk(normalised(data), normalised(round_trip(data, model)), "$")
    return found
