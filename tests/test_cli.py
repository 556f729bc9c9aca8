"""The command line as a user runs it: exit codes and one-line errors."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.conftest import sample

COMMAND = [sys.executable, "-m", "indexer"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "OPENSEARCH_"))}
    return subprocess.run(
        [*COMMAND, *args], env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("run",), {}, "GENESYS_REGION is not set"),
        (("run",), {"GENESYS_REGION": "us_east_1", "GENESYS_QUEUES": "Q"}, "GENESYS_CLIENT_ID is not set"),
        (("replay", "/nonexistent.ndjson"), {}, "replay file /nonexistent.ndjson does not exist"),
        (
            ("emulate", "--corpus", "/nonexistent.ndjson"),
            {},
            "corpus file /nonexistent.ndjson does not exist",
        ),
        (
            ("emulate", "--chitchat", "9000"),
            {},
            "--chitchat: chitchat-dataset holds 7168 conversations, not 9000",
        ),
    ],
)
def test_setting_errors_exit_2_with_one_line(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    """A missing or invalid setting: exit code 2, one line on stderr naming it, no traceback."""
    result = _run(*args, env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"transcript-indexer: error: {message}")


def test_replay_without_a_sink_setting_names_it(tmp_path: Path) -> None:
    """The sink plugin's own settings are checked the same way."""
    capture = tmp_path / "capture.ndjson"
    capture.write_text("")
    result = _run("replay", str(capture), env={"INDEXER_STATE_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "OPENSEARCH_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugins_list() -> None:
    """``plugins list`` shows each loaded plugin and where it comes from."""
    result = _run("plugins", "list")
    assert result.returncode == 0
    names = {line.split("\t")[0] for line in result.stdout.splitlines()}
    assert {"pii", "opensearch", "indexer.default_plugins"} <= names


def test_emulate_prints_its_ready_line(tmp_path: Path) -> None:
    """``emulate`` prints one JSON line with where to connect, then serves until stopped."""
    corpus = tmp_path / "corpus.ndjson"
    corpus.write_text(
        json.dumps({"turns": [{"speaker": "customer", "text": "hi"}], "queue": "Billing"}) + "\n"
    )
    process = subprocess.Popen(
        [*COMMAND, "emulate", "--corpus", str(corpus), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert set(ready) == {"api_base_url", "login_base_url", "client_id", "client_secret", "queues"}
        assert ready["queues"] == ["Billing"]
        assert ready["api_base_url"].startswith("http://127.0.0.1:")
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def test_emulate_plays_chitchat_conversations_under_a_public_url() -> None:
    """``emulate --chitchat N --public-url URL``: the compose file's emulator profile."""
    process = subprocess.Popen(
        [*COMMAND, "emulate", "--chitchat", "5", "--port", "0", "--public-url", "http://emulator:8080"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert ready["api_base_url"] == ready["login_base_url"] == "http://emulator:8080"
        assert ready["queues"] and set(ready["queues"]) <= {"Billing", "Support", "Sales", "Retention"}
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def test_status_reads_the_state_directory(tmp_path: Path) -> None:
    """``status`` says when there is no worker, and prints what the last one reported."""
    env = {"INDEXER_STATE_DIR": str(tmp_path)}
    assert "no status" in _run("status", env=env).stdout
    (tmp_path / "status.json").write_text(
        json.dumps(
            {"time": 0, "pid": 42, "open_conversations": 3, "outbox": {"entries": 2, "bytes": 900},
             "indexed": 7, "dead_letters": 1, "channels": 2, "topics": 1005, "waiting_for_room": 0,
             "stopped": True}
        )
    )  # fmt: skip
    result = _run("status", env=env)
    assert result.returncode == 0
    assert "worker not running (pid 42" in result.stdout
    assert "open conversations   3" in result.stdout
    assert "outbox               2 transcripts, 900 bytes" in result.stdout
    assert "channels             2 (1005 topics, 0 conversations waiting for room)" in result.stdout
    assert json.loads(_run("status", "--json", env=env).stdout)["indexed"] == 7


def test_replay_shows_progress_at_a_terminal_only(tmp_path: Path, opensearch_url: str) -> None:
    """A progress bar on a terminal; nothing but the log when stderr is a pipe or a file."""
    capture = tmp_path / "capture.ndjson"
    frames = [sample("queue-conversation"), sample("transcription"), sample("transcription-ended")]
    capture.write_text("".join(json.dumps(f) + "\n" for f in frames))
    env = {"OPENSEARCH_URL": opensearch_url, "INDEXER_STATE_DIR": str(tmp_path / "state")}
    piped = _run("--log-level", "WARNING", "replay", str(capture), env=env)
    assert piped.returncode == 0, piped.stderr
    assert "replay:" not in piped.stderr and "\r" not in piped.stderr

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 x 100
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "OPENSEARCH_"))}
    process = subprocess.Popen(
        [*COMMAND, "--log-level", "WARNING", "replay", str(capture)],
        env={**clean, **env, "INDEXER_STATE_DIR": str(tmp_path / "state2")},
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    assert b"replay: 100%" in shown
