"""``transcript-indexer search`` and ``show``: conversations by what was said, and one
conversation read as a chat log, for analysts at a terminal.

The query DSL it sends is the one the README's cookbook shows: utterances are ``nested``
documents, so a match and its speaker are tested on the same utterance, and the matching
utterances come back as ``inner_hits`` with highlights. Results are sorted by score, then
newest first, then by conversation id, so pages never overlap: ``page`` reads from an
offset (up to the index's ``max_result_window``, 10,000 results), ``after`` continues
after a result's ``cursor`` (``search_after``, any depth).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import attrs
from opensearchpy import OpenSearch

__all__ = [
    "SearchQuery",
    "build_query",
    "format_conversation",
    "format_results",
    "get_conversation",
    "run_search",
]

#: Marks around highlighted words in what OpenSearch returns; replaced when printing.
_PRE: Final = "\x02"
_POST: Final = "\x03"
BOLD: Final = ("\x1b[1m", "\x1b[0m")
MATCHES_SHOWN: Final = 3


def _iso(option: str, value: str | None) -> str | None:
    """``value`` as an ISO-8601 UTC time (a date is its midnight, UTC).

    :raises ValueError: not an ISO-8601 date or time, naming ``option``.
    """
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{option} {value!r} is not an ISO-8601 date or time (2026-03-19 or 2026-03-19T14:00)"
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _since(value: str | None) -> str | None:
    return _iso("--since", value)


def _until(value: str | None) -> str | None:
    return _iso("--until", value)


@attrs.frozen
class SearchQuery:
    """What an analyst asks for; every part is optional.

    :ivar text: words to find in one utterance (all of them, any order), or with
        ``phrase`` the exact phrase.
    :ivar speaker: ``agent`` or ``customer``: only utterances of that speaker.
    :ivar queue: queue name, whole, in any case.
    :ivar since: conversations started at or after this date or time (ISO-8601, UTC
        unless it says otherwise).
    :ivar until: conversations started before this date or time (ISO-8601).
    :ivar limit: conversations returned at most (1 or more).
    :ivar page: the page of ``limit`` results, from 1.
    :ivar after: a result's ``cursor``: the results after it.
    :raises ValueError: a part out of range or unreadable (one line naming the option).
    """

    text: str | None = None
    phrase: bool = False
    speaker: str | None = None
    queue: str | None = None
    since: str | None = attrs.field(default=None, converter=_since)
    until: str | None = attrs.field(default=None, converter=_until)
    limit: int = 20
    page: int = 1
    after: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"--limit must be 1 or more, not {self.limit}")
        if self.page < 1:
            raise ValueError(f"--page must be 1 or more, not {self.page}")
        if self.after is not None and self.page != 1:
            raise ValueError("--page and --after cannot be used together")
        if self.after is not None:
            _decode_cursor(self.after)


def _cursor(sort: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(sort, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise ValueError(f"--after {cursor!r} is not a cursor that search printed") from None
    if not isinstance(values, list) or len(values) != 3:
        raise ValueError(f"--after {cursor!r} is not a cursor that search printed")
    return values


def build_query(query: SearchQuery) -> dict[str, Any]:
    """The search request body for ``query`` (shown by ``search --explain``)."""
    utterance: dict[str, Any] = {"bool": {"filter": [], "must": []}}
    if query.text:
        kind = "match_phrase" if query.phrase else "match"
        match: dict[str, Any] = (
            {"query": query.text} if query.phrase else {"query": query.text, "operator": "and"}
        )
        utterance["bool"]["must"].append({kind: {"utterances.text": match}})
    if query.speaker:
        utterance["bool"]["filter"].append({"term": {"utterances.speaker": query.speaker}})
    conversation: list[dict[str, Any]] = []
    if query.queue:
        conversation.append({"term": {"queues.name": {"value": query.queue, "case_insensitive": True}}})
    if query.since or query.until:
        bounds = {k: v for k, v in (("gte", query.since), ("lt", query.until)) if v}
        conversation.append({"range": {"started_at": bounds}})
    must: list[dict[str, Any]] = []
    if query.text or query.speaker:
        must.append(
            {
                "nested": {
                    "path": "utterances",
                    "query": utterance,
                    "inner_hits": {
                        "size": MATCHES_SHOWN,
                        "_source": ["utterances.speaker", "utterances.text", "utterances.offset_ms"],
                        "highlight": {
                            "pre_tags": [_PRE],
                            "post_tags": [_POST],
                            "fields": {"utterances.text": {"number_of_fragments": 0}},
                        },
                    },
                }
            }
        )
    body: dict[str, Any] = {
        "size": query.limit + 1,  # one more than shown: whether more follow
        "query": {"bool": {"must": must or [{"match_all": {}}], "filter": conversation}},
        "sort": ["_score", {"started_at": {"order": "desc"}}, {"conversation_id": {"order": "asc"}}],
        "_source": [
            "conversation_id",
            "started_at",
            "queues",
            "duration_ms",
            "completion_reason",
            "complete",
            "media_type",
        ],
        "track_total_hits": True,
    }
    if query.page > 1:
        body["from"] = (query.page - 1) * query.limit
    if query.after is not None:
        body["search_after"] = _decode_cursor(query.after)
    return body


def _matches(hit: dict[str, Any]) -> list[dict[str, Any]]:
    inner = hit.get("inner_hits", {}).get("utterances", {}).get("hits", {}).get("hits", [])
    matches = []
    for item in inner:
        source = item.get("_source", {})
        text = (item.get("highlight", {}).get("utterances.text") or [source.get("text", "")])[0]
        matches.append(
            {"speaker": source.get("speaker"), "offset_ms": source.get("offset_ms"), "highlighted": text}
        )
    return matches


def run_search(client: OpenSearch, alias: str, query: SearchQuery) -> tuple[int, list[dict[str, Any]], bool]:
    """The number of matching conversations, the ``query.limit`` of them the query asks
    for, and whether more follow them.

    Each result: ``conversation_id``, ``started_at``, ``queues`` (names), ``duration_ms``,
    ``media_type``, ``complete``, ``matches`` (up to three utterances: ``speaker``,
    ``offset_ms``, ``text`` and ``highlighted``, whose matched words are between
    ``\\x02`` and ``\\x03``) and ``cursor`` (``SearchQuery.after`` for what follows it).

    :raises opensearchpy.exceptions.NotFoundError: no index or alias ``alias``.
    """
    response = client.search(index=alias, body=build_query(query))
    results = []
    for hit in response["hits"]["hits"]:
        source = hit["_source"]
        matches = _matches(hit)
        for match in matches:
            match["text"] = match["highlighted"].replace(_PRE, "").replace(_POST, "")
        results.append(
            {
                "conversation_id": hit["_id"],
                "started_at": source.get("started_at"),
                "queues": [q.get("name") for q in source.get("queues") or []],
                "duration_ms": source.get("duration_ms"),
                "media_type": source.get("media_type"),
                "complete": source.get("complete"),
                "matches": matches,
                "cursor": _cursor(hit["sort"]),
            }
        )
    return int(response["hits"]["total"]["value"]), results[: query.limit], len(results) > query.limit


def format_results(
    total: int,
    results: Iterable[dict[str, Any]],
    *,
    as_json: bool = False,
    as_csv: bool = False,
    bold: bool,
    more: bool = False,
) -> str:
    """Lines for a terminal (matches in bold when ``bold``), one JSON object per line, or
    CSV with a header (``conversation_id, started_at, queues, duration_ms, media_type,
    complete, matches``: queues and matched texts joined by `` | ``). With ``more``, the
    terminal lines end with the ``--after`` cursor of the last result."""
    results = list(results)
    if as_json:
        lines = []
        for result in results:
            matches = [{k: v for k, v in m.items() if k != "highlighted"} for m in result["matches"]]
            lines.append(json.dumps({**result, "matches": matches}, ensure_ascii=False))
        return "\n".join(lines)
    if as_csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["conversation_id", "started_at", "queues", "duration_ms", "media_type", "complete", "matches"]
        )
        for r in results:
            writer.writerow(
                [
                    r["conversation_id"],
                    r["started_at"] or "",
                    " | ".join(q for q in r["queues"] if q),
                    r["duration_ms"] if r["duration_ms"] is not None else "",
                    r["media_type"] or "",
                    "" if r["complete"] is None else str(r["complete"]).lower(),
                    " | ".join(f"{m['speaker']}: {m['text']}" for m in r["matches"]),
                ]
            )
        return out.getvalue().rstrip("\n")
    start, end = BOLD if bold else ("", "")
    lines = [f"{total} conversations" + (f", {len(results)} shown" if total > len(results) else "")]
    for result in results:
        seconds = (result["duration_ms"] or 0) // 1000
        lines.append(
            f"{result['conversation_id']}  {result['started_at'] or '-'}  {result['media_type'] or '-'}  "
            f"{', '.join(q for q in result['queues'] if q) or '-'}  {seconds} s"
            + ("" if result["complete"] is not False else "  (incomplete)")
        )
        for match in result["matches"]:
            text = match["highlighted"].replace(_PRE, start).replace(_POST, end)
            at = (match["offset_ms"] or 0) // 1000
            lines.append(f"    {at:>4} s  {match['speaker']}: {text}")
    if results and more:
        lines.append(f"more: --after {results[-1]['cursor']}")
    return "\n".join(lines)


def get_conversation(client: OpenSearch, alias: str, conversation_id: str) -> dict[str, Any] | None:
    """The indexed document of ``conversation_id`` (its ``_source``), or ``None``.

    Searched by id over the alias (after a rollover it may point at several indices,
    which a get by id does not allow).

    :raises opensearchpy.exceptions.NotFoundError: no index or alias ``alias``.
    """
    response = client.search(index=alias, body={"query": {"ids": {"values": [conversation_id]}}, "size": 1})
    hits = response["hits"]["hits"]
    return dict(hits[0]["_source"]) if hits else None


def _clock(ms: int) -> str:
    minutes, rest = divmod(max(ms, 0), 60_000)
    return f"{minutes:02d}:{rest / 1000:04.1f}"


def format_conversation(document: dict[str, Any]) -> str:
    """``document`` as a chat log: a heading, then one line per utterance (time from the
    start, speaker, text with its redaction markers), then the redaction counts."""
    queues = ", ".join(q.get("name") or q.get("id", "") for q in document.get("queues") or []) or "-"
    seconds = (document.get("duration_ms") or 0) // 1000
    lines = [
        f"conversation {document.get('conversation_id')}  {document.get('media_type', 'voice')}"
        + (f" ({document['message_type']})" if document.get("message_type") else "")
        + f"  queue {queues}  {document.get('direction') or '-'}",
        f"started {document.get('started_at') or '-'}  ended {document.get('ended_at') or '-'}  {seconds} s  "
        f"{'complete' if document.get('complete') else 'INCOMPLETE'} ({document.get('completion_reason')}, "
        f"{document.get('source', 'live')})",
        "",
    ]
    utterances = sorted(document.get("utterances") or [], key=lambda u: u.get("offset_ms") or 0)
    width = max((len(u.get("speaker") or "") for u in utterances), default=0)
    for u in utterances:
        lines.append(
            f"{_clock(u.get('offset_ms') or 0)}  {(u.get('speaker') or '?'):<{width}}  {u.get('text', '')}"
        )
    if not utterances:
        lines.append("(no utterances)")
    redaction = document.get("redaction") or {}
    counts = redaction.get("counts") or {}
    lines.append("")
    lines.append(
        "redacted: "
        + (", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "nothing")
        + (f" (rule set {redaction['rule_set_version']})" if redaction.get("rule_set_version") else "")
    )
    return "\n".join(lines)
