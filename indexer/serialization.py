"""The one cattrs converter, and the functions that parse and dump with it.

Three families of attrs classes go through it, told apart by the module that defines them:

- wire models (:mod:`indexer.models`): camelCase on the wire (snake_case for classes that
  set ``__wire_names__ = "snake"``, like the OAuth response), unknown keys ignored,
  ``None`` fields omitted when dumped (as Genesys does);
- documents (:mod:`indexer.document`): snake_case, every field dumped;
- settings (:mod:`indexer.config`): snake_case, unknown keys rejected so typos fail loudly.

cattrs reports structuring errors as exception groups; :func:`parse_envelope` and
:func:`structure` turn them into one :class:`~indexer.errors.MalformedMessage` or
:class:`~indexer.errors.ConfigError` line, so an exception group that escapes a nursery
always means "a task failed".
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter
from cattrs.v import format_exception

from indexer import models, topics
from indexer.errors import MalformedMessage, UnusedTopic

__all__ = [
    "converter",
    "dump_envelope",
    "format_time",
    "frame_of",
    "parse_envelope",
    "parse_time",
    "structure",
    "unstructure",
]

T = TypeVar("T")

_WIRE_MODULES = ("indexer.models",)
#: Times accepted in wire models (``datetime`` fields).
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)
_SETTINGS_MODULES = ("indexer.config",)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def parse_time(value: str) -> datetime:
    """Parse an ISO-8601 time; a naive time is taken as UTC.

    :raises ValueError: when ``value`` is not ISO-8601.
    """
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """ISO-8601 UTC with millisecond precision and a ``Z``, as Genesys writes times."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_wire(cls: type) -> bool:
    return attrs.has(cls) and cls.__module__ in _WIRE_MODULES


def _is_settings(cls: type) -> bool:
    return attrs.has(cls) and cls.__module__ in _SETTINGS_MODULES


def _build() -> cattrs.Converter:
    conv = make_converter(forbid_extra_keys=False)

    def _structure_time(value: Any, _: type) -> datetime:
        if not isinstance(value, str):
            raise TypeError("expected an ISO-8601 string")
        parsed = parse_time(value)
        try:
            in_utc = parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError("time out of range") from None
        if not EARLIEST <= in_utc < LATEST:  # no real event; and date arithmetic would overflow
            raise ValueError("time out of range (1970 to 2200)")
        return parsed

    conv.register_structure_hook(datetime, _structure_time)

    # JSON and TOML booleans are not numbers (Python's bool is an int subclass).
    def _structure_int(value: Any, _: type) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("expected an integer")
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise TypeError("expected an integer")
        return int(value)

    def _structure_float(value: Any, _: type) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("expected a number")
        return float(value)

    def _structure_bool(value: Any, _: type) -> bool:
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value

    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(bool, _structure_bool)  # after int: bool is an int subclass
    conv.register_unstructure_hook(datetime, format_time)

    def _wire_overrides(cls: type) -> dict[str, Any]:
        snake = getattr(cls, "__wire_names__", "camel") == "snake"
        result = {}
        for field in attrs.fields(cls):
            wire = field.name if snake else _camel(field.name)
            result[field.name] = override(rename=wire, omit_if_default=field.default is None)
        return result

    def _wire_structure(cls: type) -> Any:
        # Every SDK field may be null: a null field is an absent one (its default), and a
        # null inside a list is no element. Required fields then fail as missing.
        structure_dict: Callable[[Any, type], Any] = make_dict_structure_fn(cls, conv, **_wire_overrides(cls))

        def structure_wire(data: Any, _: type) -> Any:
            if not isinstance(data, dict):
                raise TypeError("expected a JSON object")
            present = {
                key: [item for item in value if item is not None] if type(value) is list else value
                for key, value in data.items()
                if value is not None
            }
            return structure_dict(present, cls)

        return structure_wire

    conv.register_structure_hook_factory(_is_wire, _wire_structure)
    conv.register_unstructure_hook_factory(
        _is_wire, lambda cls: make_dict_unstructure_fn(cls, conv, **_wire_overrides(cls))
    )
    conv.register_structure_hook_factory(
        _is_settings, lambda cls: make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)
    )
    detailed_words = conv.get_structure_hook(tuple[models.Word, ...])

    def _structure_words(value: Any, type_: Any) -> tuple[models.Word, ...]:
        # Words are most of a transcription frame: built directly when every field has its
        # plain JSON type and its range; anything else takes the detailed way, which names
        # the field at fault.
        if type(value) is list:
            try:
                return tuple(_plain_word(item) for item in value)
            except (_NotPlain, ValueError):
                pass
        words: tuple[models.Word, ...] = detailed_words(value, type_)
        return words

    conv.register_structure_hook_func(lambda type_: type_ == tuple[models.Word, ...], _structure_words)
    return conv


class _NotPlain(Exception):
    """A word that the detailed structuring must read (a type other than JSON's plain one)."""


def _plain_word(item: Any) -> models.Word:
    """``item`` as a :class:`~indexer.models.Word` when each field is absent, null or of
    its plain JSON type (the attrs validators check ranges: ``ValueError``).

    :raises _NotPlain: anything else.
    """
    if type(item) is not dict:
        raise _NotPlain
    word = item.get("word")
    offset = item.get("offsetMs")
    duration = item.get("durationMs")
    confidence = item.get("confidence")
    start = item.get("startTimeMs")
    if not (
        (word is None or type(word) is str)
        and (offset is None or type(offset) is int)
        and (duration is None or type(duration) is int)
        and (start is None or type(start) is int)
        and (confidence is None or type(confidence) is float or type(confidence) is int)
    ):
        raise _NotPlain
    return models.Word(
        word="" if word is None else word,
        offset_ms=offset,
        duration_ms=duration,
        confidence=None if confidence is None else float(confidence),
        start_time_ms=start,
    )


converter: cattrs.Converter = _build()


def _format_error(exc: BaseException, type_: Any) -> str:
    """cattrs' description of one field's error, without the value (attrs' range
    validators quote it; our own time checks do not)."""
    if isinstance(exc, ValueError) and " must be " in str(exc):
        return "value out of range"
    if isinstance(exc, ValueError) and str(exc).startswith("time out of range"):
        return str(exc)
    return format_exception(exc, type_)


def _describe(exc: BaseException, path: str) -> str:
    if isinstance(exc, cattrs.BaseValidationError | cattrs.ForbiddenExtraKeysError):
        return "; ".join(cattrs.transform_error(exc, path=path, format_exception=_format_error))
    return f"{type(exc).__name__} at {path}"


def structure(data: Any, cls: type[T], *, what: str = "$") -> T:
    """Structure plain data into ``cls`` with the project converter.

    :param what: the name of the input, used as the root of error paths.
    :raises MalformedMessage: one line naming each wrong field (values are never quoted).
    """
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, cattrs.ForbiddenExtraKeysError, ValueError, TypeError) as exc:
        raise MalformedMessage(_describe(exc, what)) from None
    except RecursionError:
        raise MalformedMessage(f"nested too deeply @ {what}") from None


def unstructure(obj: Any) -> Any:
    """Plain JSON-ready data for an attrs object (wire names for wire models)."""
    return converter.unstructure(obj)


_BODY_CLASS: dict[str, type[models.EventBody]] = {
    "metadata": models.ChannelMetadata,
    "system": models.SystemMessage,
    "transcription": models.TranscriptionMessage,
    "conversation": models.ConversationEvent,
}


def parse_envelope(raw: str | bytes) -> models.Envelope:
    """Parse one WebSocket text frame into an :class:`~indexer.models.Envelope`.

    :param raw: the frame as received (UTF-8 JSON).
    :returns: the envelope with its ``event_body`` structured by topic kind.
    An Amazon EventBridge event (reference §7: ``version``, ``id``, ``detail-type``,
    ``source``, ``time``, ``detail``) is read as the notification its ``detail`` holds
    (``topicName``, ``version``, ``eventBody``, ``metadata``: the same as on the WebSocket).

    :raises MalformedMessage: invalid JSON, a missing ``topicName``, an unknown topic, or a
        body that does not fit its model. The reason names fields, never values.
    :raises UnusedTopic: a topic the worker does not use (analytics detail events).
    """
    try:
        data = json.loads(raw)
    except ValueError:
        raise MalformedMessage("not valid JSON") from None
    except RecursionError:
        raise MalformedMessage("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise MalformedMessage("not a JSON object")
    if "detail-type" in data and isinstance(data.get("detail"), dict):
        data = data["detail"]  # an EventBridge event: its detail is the notification
    topic = data.get("topicName")
    if not isinstance(topic, str):
        raise MalformedMessage("missing topicName")
    kind = topics.topic_kind(topic)
    if kind is None:
        raise MalformedMessage("unknown topic")
    if kind == "detail":
        raise UnusedTopic(kind)
    body_cls = _BODY_CLASS[kind]
    event_body = data.get("eventBody") or {}
    if kind == "transcription" and isinstance(event_body, dict) and not event_body.get("conversationId"):
        event_body = {**event_body, "conversationId": topics.conversation_id_of_transcription_topic(topic)}
    body = structure(event_body, body_cls, what="$.eventBody")
    metadata = data.get("metadata")
    correlation_id = metadata.get("CorrelationId") if isinstance(metadata, dict) else None
    version = data.get("version")
    return models.Envelope(
        topic_name=topic,
        event_body=body,
        version=str(version) if version is not None else None,
        correlation_id=correlation_id if isinstance(correlation_id, str) else None,
        frame=raw if isinstance(raw, str) else None,
    )


def frame_of(envelope: models.Envelope) -> str:
    """The text frame ``envelope`` was parsed from, else :func:`dump_envelope`'s."""
    return envelope.frame if envelope.frame is not None else dump_envelope(envelope)


def dump_envelope(envelope: models.Envelope) -> str:
    """The JSON text frame for ``envelope``: the inverse of :func:`parse_envelope`."""
    data: dict[str, Any] = {"topicName": envelope.topic_name}
    if envelope.version is not None:
        data["version"] = envelope.version
    data["eventBody"] = converter.unstructure(envelope.event_body)
    if envelope.correlation_id is not None:
        data["metadata"] = {"CorrelationId": envelope.correlation_id}
    return json.dumps(data, separators=(",", ":"))
