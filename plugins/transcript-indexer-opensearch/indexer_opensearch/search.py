"""``transcript-indexer search``: conversations by what was said, for analysts at a terminal.

The query DSL it sends is the one the README's cookbook shows: utterances are ``nested``
documents, so a match and its speaker are tested on the same utterance, and the matching
utterances come back as ``inner_hits`` with highlights.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

import attrs
from opensearchpy import OpenSearch

__all__ = ["SearchQuery", "build_query", "format_results", "run_search"]

#: Marks around highlighted words in what OpenSearch returns; replaced when printing.
_PRE: Final = "\x02"
_POST: Final = "\x03"
BOLD: Final = ("\x1b[1m", "\x1b[0m")
MATCHES_SHOWN: Final = 3


@attrs.frozen
class SearchQuery:
    """What an analyst asks for; every part is optional.

    :ivar text: words to find in one utterance (all of them, any order), or with
        ``phrase`` the exact phrase.
    :ivar speaker: ``agent`` or ``customer``: only utterances of that speaker.
    :ivar queue: queue name, exact.
    :ivar since: conversations started at or after this date or time (ISO-8601).
    :ivar until: conversations started before this date or time (ISO-8601).
    :ivar limit: conversations returned at most.
    """

    text: str | None = None
    phrase: bool = False
    speaker: str | None = None
    queue: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 20


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
        conversation.append({"term": {"queues.name": query.queue}})
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
    return {
        "size": query.limit,
        "query": {"bool": {"must": must or [{"match_all": {}}], "filter": conversation}},
        "sort": ["_score", {"started_at": {"order": "desc"}}],
        "_source": ["conversation_id", "started_at", "queues", "duration_ms", "completion_reason"],
        "track_total_hits": True,
    }


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


def run_search(client: OpenSearch, alias: str, query: SearchQuery) -> tuple[int, list[dict[str, Any]]]:
    """The number of matching conversations and the first ``query.limit`` of them.

    Each result: ``conversation_id``, ``started_at``, ``queues`` (names), ``duration_ms``,
    ``matches`` (up to three utterances: ``speaker``, ``offset_ms``, ``text`` and
    ``highlighted``, whose matched words are between ``\\x02`` and ``\\x03``).
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
                "matches": matches,
            }
        )
    return int(response["hits"]["total"]["value"]), results


def format_results(total: int, results: Iterable[dict[str, Any]], *, as_json: bool, bold: bool) -> str:
    """Lines for a terminal (matches in bold when ``bold``), or one JSON object per line."""
    results = list(results)
    if as_json:
        lines = []
        for result in results:
            matches = [{k: v for k, v in m.items() if k != "highlighted"} for m in result["matches"]]
            lines.append(json.dumps({**result, "matches": matches}, ensure_ascii=False))
        return "\n".join(lines)
    start, end = BOLD if bold else ("", "")
    lines = [f"{total} conversations" + (f", first {len(results)}" if total > len(results) else "")]
    for result in results:
        seconds = (result["duration_ms"] or 0) // 1000
        lines.append(
            f"{result['conversation_id']}  {result['started_at'] or '-'}  "
            f"{', '.join(q for q in result['queues'] if q) or '-'}  {seconds} s"
        )
        for match in result["matches"]:
            text = match["highlighted"].replace(_PRE, start).replace(_POST, end)
            at = (match["offset_ms"] or 0) // 1000
            lines.append(f"    {at:>4} s  {match['speaker']}: {text}")
    return "\n".join(lines)
