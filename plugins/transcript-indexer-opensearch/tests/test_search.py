"""``transcript-indexer search`` against an OpenSearch-compatible node holding indexed transcripts."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
from opensearchpy import OpenSearch

from indexer.document import DocUtterance, QueueRef, RedactionSummary, TranscriptDocument
from indexer.redaction import join_text
from indexer_opensearch import OpenSearchSink
from indexer_opensearch.search import SearchQuery, format_results, run_search

DAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CALLS = {
    "c-cancel": (
        "Retention",
        0,
        [("customer", "I want to cancel my subscription"), ("agent", "Sorry to hear")],
    ),
    "c-refund": ("Billing", 1, [("customer", "Please cancel the order and refund me"), ("agent", "Done")]),
    "c-agent": ("Billing", 2, [("customer", "Hello"), ("agent", "You can cancel my subscription online")]),
    "c-other": ("Support", 3, [("customer", "My router is broken"), ("agent", "Let us restart it")]),
}


def _document(conversation_id: str, queue: str, day: int, turns: list[tuple[str, str]]) -> TranscriptDocument:
    started = DAY + timedelta(days=day)
    utterances = tuple(
        DocUtterance(
            utterance_id=f"{conversation_id}-{n}",
            communication_id="comm",
            speaker=speaker,
            text=text,
            offset_ms=n * 4000,
            duration_ms=3000,
            confidence=0.9,
            spoken_at=started + timedelta(seconds=n * 4),
        )
        for n, (speaker, text) in enumerate(turns)
    )
    return TranscriptDocument(
        conversation_id=conversation_id,
        version=1,
        started_at=started,
        ended_at=started + timedelta(minutes=2),
        duration_ms=120_000,
        queues=(QueueRef(f"id-{queue}", queue),),
        direction="inbound",
        language="en-US",
        participants=(),
        utterances=utterances,
        text=join_text(utterances),
        complete=True,
        completion_reason="ended",
        redaction=RedactionSummary("v1", {"CREDIT_CARD": 1} if conversation_id == "c-refund" else {}),
    )


@pytest.fixture
async def client(any_opensearch_url: str) -> OpenSearch:
    opensearch_url = any_opensearch_url
    sink = OpenSearchSink(url=opensearch_url)
    await sink.open()
    results = await sink.write([_document(cid, *call) for cid, call in CALLS.items()])
    assert all(r.ok for r in results)
    search = OpenSearch(hosts=[opensearch_url])
    search.indices.refresh(index="transcripts")
    return search


def _ids(client: OpenSearch, query: SearchQuery) -> set[str]:
    total, results, more = run_search(client, "transcripts", query)
    assert total == len(results) and not more
    return {r["conversation_id"] for r in results}


async def test_words_phrase_speaker_queue_and_dates(client: OpenSearch) -> None:
    """Each filter narrows the conversations as the cookbook says."""
    assert _ids(client, SearchQuery(text="cancel")) == {"c-cancel", "c-refund", "c-agent"}
    assert _ids(client, SearchQuery(text="cancel subscription")) == {"c-cancel", "c-agent"}
    assert _ids(client, SearchQuery(text="cancel subscription", phrase=True)) == set()
    assert _ids(client, SearchQuery(text="cancel my subscription", phrase=True)) == {"c-cancel", "c-agent"}
    assert _ids(client, SearchQuery(text="cancel", speaker="customer")) == {"c-cancel", "c-refund"}
    assert _ids(client, SearchQuery(text="cancel", queue="Billing")) == {"c-refund", "c-agent"}
    assert _ids(client, SearchQuery(text="cancel", since="2026-11-03", until="2026-11-04")) == {"c-refund"}
    assert _ids(client, SearchQuery(queue="Support")) == {"c-other"}


async def test_matches_are_highlighted_at_a_terminal_only(client: OpenSearch) -> None:
    total, results, _ = run_search(client, "transcripts", SearchQuery(text="refund", speaker="customer"))
    (match,) = results[0]["matches"]
    assert match["speaker"] == "customer" and match["text"] == "Please cancel the order and refund me"
    shown = format_results(total, results, as_json=False, bold=True)
    assert "customer: Please cancel the order and \x1b[1mrefund\x1b[0m me" in shown
    plain = format_results(total, results, as_json=False, bold=False)
    assert "\x1b" not in plain and "\x02" not in plain and "refund me" in plain


async def test_the_command_prints_json_lines(client: OpenSearch, any_opensearch_url: str) -> None:
    env = {**os.environ, "OPENSEARCH_URL": any_opensearch_url}
    result = await trio.run_process(
        [sys.executable, "-m", "indexer", "search", "cancel", "--speaker", "agent", "--json"],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    (line,) = result.stdout.decode().splitlines()
    found = json.loads(line)
    assert found["conversation_id"] == "c-agent" and found["queues"] == ["Billing"]
    assert found["matches"] == [
        {"speaker": "agent", "offset_ms": 4000, "text": "You can cancel my subscription online"}
    ]


async def _command(*args: str, url: str) -> tuple[int, str, str]:
    env = {**os.environ, "OPENSEARCH_URL": url}
    result = await trio.run_process(
        [sys.executable, "-m", "indexer", *args],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_queue_names_match_in_any_case(client: OpenSearch) -> None:
    assert _ids(client, SearchQuery(queue="billing")) == {"c-refund", "c-agent"}
    assert _ids(client, SearchQuery(queue="BILLING")) == {"c-refund", "c-agent"}
    assert _ids(client, SearchQuery(queue="Bill")) == set()  # a whole name, not a prefix


async def test_pages_and_cursors_walk_every_result_once(client: OpenSearch) -> None:
    """``page`` and ``after`` give every conversation exactly once, newest first among
    equal scores; results say their media type and whether they are complete."""
    pages = [run_search(client, "transcripts", SearchQuery(limit=3, page=n))[1] for n in (1, 2, 3)]
    assert [run_search(client, "transcripts", SearchQuery(limit=3, page=n))[2] for n in (1, 2)] == [
        True,
        False,
    ]
    assert [[r["conversation_id"] for r in page] for page in pages] == [
        ["c-other", "c-agent", "c-refund"],
        ["c-cancel"],
        [],
    ]
    seen, after = [], None
    while True:
        _, results, _ = run_search(client, "transcripts", SearchQuery(limit=1, after=after))
        if not results:
            break
        seen.append(results[0]["conversation_id"])
        after = results[0]["cursor"]
    assert seen == ["c-other", "c-agent", "c-refund", "c-cancel"]
    assert pages[0][0]["media_type"] == "voice" and pages[0][0]["complete"] is True


async def test_the_command_exports_csv_and_pages(client: OpenSearch, any_opensearch_url: str) -> None:
    code, out, err = await _command("search", "cancel", "--csv", url=any_opensearch_url)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["conversation_id"] for r in rows} == {"c-cancel", "c-refund", "c-agent"}
    refund = next(r for r in rows if r["conversation_id"] == "c-refund")
    assert refund["queues"] == "Billing" and refund["media_type"] == "voice" and refund["complete"] == "true"
    assert refund["matches"] == "customer: Please cancel the order and refund me"
    code, out, _ = await _command("search", "--limit", "2", url=any_opensearch_url)
    assert out.splitlines()[0] == "4 conversations, 2 shown"
    cursor = out.splitlines()[-1].removeprefix("more: --after ")
    code, rest, _ = await _command("search", "--limit", "2", "--after", cursor, url=any_opensearch_url)
    assert [line.split()[0] for line in rest.splitlines()[1:]] == ["c-refund", "c-cancel"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("search", "--since", "yesterday"), "--since 'yesterday' is not an ISO-8601 date or time"),
        (("search", "--limit", "-1"), "--limit must be 1 or more, not -1"),
        (("search", "--page", "0"), "--page must be 1 or more, not 0"),
        (("search", "--after", "nonsense!"), "--after 'nonsense!' is not a cursor that search printed"),
        (("show", "c-none"), "no conversation 'c-none' in 'transcripts'"),
    ],
)
async def test_bad_input_is_one_line_and_exit_2(
    args: tuple[str, ...], message: str, client: OpenSearch, any_opensearch_url: str
) -> None:
    code, out, err = await _command(*args, url=any_opensearch_url)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"transcript-indexer: error: {message}")


async def test_a_missing_alias_is_one_line(opensearch_url: str, tmp_path: Path) -> None:
    """Nothing indexed yet: the index is named, not a 404 traceback."""
    code, _, err = await _command("search", "hello", url=opensearch_url)
    assert code == 2
    assert err.strip() == (
        "transcript-indexer: error: OpenSearch at OPENSEARCH_URL has no index or alias 'transcripts' "
        "(nothing indexed yet, or another plugins.opensearch.alias)"
    )


async def test_show_prints_a_conversation_as_a_chat_log(client: OpenSearch, any_opensearch_url: str) -> None:
    code, out, err = await _command("show", "c-refund", url=any_opensearch_url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("conversation c-refund  voice  queue Billing  inbound")
    assert "complete (ended, live)" in lines[1] and "120 s" in lines[1]
    assert lines[3:5] == [
        "00:00.0  customer  Please cancel the order and refund me",
        "00:04.0  agent     Done",
    ]
    assert lines[-1] == "redacted: CREDIT_CARD 1 (rule set v1)"
    code, out, _ = await _command("show", "c-refund", "--json", url=any_opensearch_url)
    assert json.loads(out)["conversation_id"] == "c-refund"


def _cookbook() -> list[dict[str, Any]]:
    """The JSON blocks of the README's query cookbook, in order."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("### Query cookbook", 1)[1].split("\n## ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


async def test_the_readme_cookbook_queries_run_and_answer(client: OpenSearch) -> None:
    """Every cookbook query is valid DSL and answers its question on known transcripts."""
    customer_cancel, no_disclosure, per_queue_day, refund, cards, incomplete = _cookbook()

    def ids(body: dict[str, Any]) -> set[str]:
        return {h["_id"] for h in client.search(index="transcripts", body=body)["hits"]["hits"]}

    assert ids(customer_cancel) == {"c-cancel", "c-refund"}
    assert ids(no_disclosure) == set(CALLS)
    buckets = client.search(index="transcripts", body=per_queue_day)["aggregations"]["per_queue"]["buckets"]
    assert {b["key"]: b["doc_count"] for b in buckets} == {"Billing": 2, "Retention": 1, "Support": 1}
    assert ids(refund) <= {"c-refund"}  # "last week" depends on today; without the dates:
    assert ids(refund | {"query": {"bool": {"must": refund["query"]["bool"]["must"]}}}) == {"c-refund"}
    assert ids(cards) == {"c-refund"}
    assert ids(incomplete) == set()
