"""Encryption at rest (issue 13, item 9): with ``INDEXER_STATE_KEYS`` the journal, the
outbox and dead letters hold no transcript in clear, and read back whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from indexer.config import load_config
from indexer.deadletter import DeadLetterStore
from indexer.errors import ConfigError
from indexer.journal import Journal
from indexer.outbox import Outbox
from indexer.sealing import KEY_CHECK, Sealer, check_keys
from indexer.statedir import open_state_dir
from indexer.stats import Statistics
from tests.test_hostile_input import said

SECRET = "my social is 078-05-1120 and card 4111 1111 1111 1111"
KEY, OTHER = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def files_hold(directory: Path, text: str) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


async def test_journal_outbox_and_dead_letters_are_sealed_and_read_back(tmp_path: Path) -> None:
    with open_state_dir(tmp_path, [KEY]) as sealer:
        assert sealer.enabled
        journal = Journal(tmp_path / "journal", sealer=sealer)
        journal.record("conv-1", json.dumps({"said": SECRET}))
        assert json.loads(journal.frames_of("conv-1")[0])["said"] == SECRET  # queued, not yet written
        await journal.flush()
        outbox = Outbox(tmp_path / "outbox", sealer=sealer)
        await outbox.put(said("conv-2", SECRET))
        dead = DeadLetterStore(tmp_path / "dead-letters.ndjson", Statistics(), sealer=sealer)
        await dead.add("redaction_failed", "rule x raised", {"text": SECRET}, conversation_id="conv-3")
    for value in (SECRET, "078-05-1120", "4111", "conv-1", "conv-3", "redaction_failed"):
        assert files_hold(tmp_path, value) == [], f"{value!r} is on disk in clear"
    with open_state_dir(tmp_path, [KEY]) as sealer:
        assert Journal(tmp_path / "journal", sealer=sealer).load() == [
            ("conv-1", json.dumps({"said": SECRET}))
        ]
        (document,) = Outbox(tmp_path / "outbox", sealer=sealer).load()
        assert document.conversation_id == "conv-2" and SECRET in document.utterances[0].text
        (letter,) = DeadLetterStore(tmp_path / "dead-letters.ndjson", Statistics(), sealer=sealer).read()
        assert letter["payload"] == {"text": SECRET} and letter["kind"] == "redaction_failed"


def test_a_wrong_or_missing_key_is_refused_with_one_line(tmp_path: Path) -> None:
    with open_state_dir(tmp_path, [KEY]):
        pass
    with pytest.raises(ConfigError, match=r"^INDEXER_STATE_KEYS: no key opens INDEXER_STATE_DIR") as wrong:
        open_state_dir(tmp_path, [OTHER]).__enter__()
    with pytest.raises(ConfigError, match=r"^INDEXER_STATE_KEYS is not set, but INDEXER_STATE_DIR") as gone:
        open_state_dir(tmp_path).__enter__()
    for error in (wrong, gone):
        assert "\n" not in str(error.value) and KEY not in str(error.value)


async def test_a_key_is_rotated_by_putting_the_new_one_first(tmp_path: Path) -> None:
    old = Sealer([KEY])
    check_keys(tmp_path, [KEY])
    dead = DeadLetterStore(tmp_path / "dead.ndjson", Statistics(), sealer=old)
    await dead.add("malformed_message", "not JSON", SECRET)
    rotated = check_keys(tmp_path, [OTHER, KEY])  # new first, old kept to read
    (letter,) = DeadLetterStore(tmp_path / "dead.ndjson", Statistics(), sealer=rotated).read()
    assert letter["payload"] == SECRET
    check_keys(tmp_path, [OTHER])  # keys.check now sealed with the new key alone
    assert Fernet(OTHER).decrypt((tmp_path / KEY_CHECK).read_bytes())


async def test_plain_records_from_before_are_read_and_resealed_at_compaction(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    plain = Journal(path)
    plain.record("open", json.dumps({"said": SECRET}))
    plain.record("done", "{}")
    plain.finalized("done")
    await plain.flush()
    assert files_hold(path, SECRET)
    sealed = Journal(path, sealer=check_keys(tmp_path, [KEY]), compact_interval_s=0)
    assert sealed.load() == [("open", json.dumps({"said": SECRET}))]
    sealed.record("other", "{}")
    sealed.finalized("other")
    await sealed.flush()  # the plain segment is rewritten, sealed
    assert files_hold(tmp_path, SECRET) == [] and files_hold(tmp_path, '"c"') == []
    assert Journal(path, sealer=Sealer([KEY])).load() == [("open", json.dumps({"said": SECRET}))]


async def test_a_damaged_sealed_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    sealer = check_keys(tmp_path, [KEY])
    journal = Journal(path, sealer=sealer)
    journal.record("a", '{"f": 1}')
    journal.record("b", '{"f": 2}')
    await journal.flush()
    with sorted(path.glob("*.ndjson"))[-1].open("ab") as file:
        file.write(sealer.seal(b'{"c": "c", "f": "{}"}')[:40])  # a torn write
    after_crash = Journal(path, sealer=sealer)
    assert after_crash.load() == [("a", '{"f": 1}'), ("b", '{"f": 2}')]
    after_crash.record("d", '{"f": 4}')
    await after_crash.flush()
    assert [c for c, _ in Journal(path, sealer=sealer).load()] == ["a", "b", "d"]


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        ({"INDEXER_STATE_KEYS": "not-a-key"}, "", "INDEXER_STATE_KEYS: key 1 is not a Fernet key"),
        ({"INDEXER_STATE_KEYS": f"{KEY},{KEY[:-2]}"}, "", "INDEXER_STATE_KEYS: key 2 is not a Fernet key"),
        ({}, f'state_keys = ["{KEY}"]', "state_keys is a secret; set INDEXER_STATE_KEYS"),
    ],
)
def test_bad_keys_are_one_line_errors(tmp_path: Path, env: dict[str, str], toml: str, message: str) -> None:
    config = tmp_path / "indexer.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=message) as error:
        load_config(config, env, need_genesys=False)
    assert KEY not in str(error.value)


def test_keys_come_from_the_environment_and_stay_out_of_repr(tmp_path: Path) -> None:
    config = load_config(None, {"INDEXER_STATE_KEYS": f" {KEY} , {OTHER} "}, need_genesys=False)
    assert config.state_keys == (KEY, OTHER)
    assert KEY not in repr(config)


def test_sealing_costs_are_bounded() -> None:
    """A token is about 4/3 of the record plus a fixed overhead (the docstring's figure)."""
    record = ("x" * 1000).encode()
    token = Sealer([KEY]).seal(record)
    assert len(token) <= len(record) * 4 // 3 + 100
