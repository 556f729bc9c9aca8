"""The command line as a user runs it: exit codes and one-line errors."""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import sample

COMMAND = [sys.executable, "-m", "indexer"]
#: Genesys settings pointing nowhere: what a test needs to get past the Genesys checks.
GENESYS = {
    "GENESYS_API_BASE_URL": "http://127.0.0.1:9",
    "GENESYS_LOGIN_BASE_URL": "http://127.0.0.1:9",
    "GENESYS_CLIENT_ID": "x",
    "GENESYS_CLIENT_SECRET": "y",
    "GENESYS_QUEUES": "Q",
}


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
        (("emulate", "--chitchat", "2", "--speed", "0"), {}, "--speed must be more than zero"),
        (
            ("emulate", "--chitchat", "2", "--transcript-delay", "-1"),
            {},
            "--transcript-delay must be zero or more",
        ),
        (("demo", "--conversations", "0"), {}, "--conversations must be more than zero"),
        (("run", "--config", "/"), {}, "config file /: Is a directory"),
        (("run",), {**GENESYS, "INDEXER_HTTP_LISTEN": "nonsense"}, "http_listen 'nonsense'"),
        (("run",), {**GENESYS, "INDEXER_HTTP_LISTEN": ":99999"}, "http_listen ':99999'"),
        (("run",), {**GENESYS, "OPENSEARCH_URL": ""}, "OPENSEARCH_URL is not set"),
    ],
)
def test_setting_errors_exit_2_with_one_line(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    """A missing or invalid setting: exit code 2, one line on stderr naming it, no traceback."""
    result = _run(*args, env=env)
    assert result.returncode == 2
    # The error is the last line; start-up may log before it (the plugins and rules loaded).
    assert result.stderr.strip().splitlines()[-1].startswith(f"transcript-indexer: error: {message}")
    assert "Traceback" not in result.stderr


def test_replay_without_a_sink_setting_names_it(tmp_path: Path) -> None:
    """The sink plugin's own settings are checked the same way."""
    capture = tmp_path / "capture.ndjson"
    capture.write_text("")
    result = _run("replay", str(capture), env={"INDEXER_STATE_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "OPENSEARCH_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_version() -> None:
    """``--version`` prints the installed version, as the build-info metric reports it."""
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"transcript-indexer {importlib.metadata.version('transcript-indexer')}"


def test_plugins_list() -> None:
    """``plugins list``: each loaded plugin, its distribution, its module file and its hooks."""
    result = _run("plugins", "list")
    assert result.returncode == 0
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in result.stdout.splitlines()}
    assert {"pii", "example_rules", "opensearch", "indexer.default_plugins"} <= set(rows)
    distribution, module, hooks = rows["pii"]
    assert distribution.startswith("transcript-indexer-pii ")
    assert module.endswith("indexer_pii/__init__.py") and Path(module).is_file()
    assert hooks == "redaction_rules"
    assert rows["opensearch"][2] == "sinks"
    assert rows["indexer.default_plugins"][0::2] == ["-", "validators"]


SAMPLES = "\n".join(
    [
        "my card is 4111 1111 1111 1111 thanks",
        "we open at 10:30 and it costs 4.99",
        json.dumps(
            {
                "turns": [
                    {"speaker": "customer", "text": "my national insurance number is a b one two"},
                    {"speaker": "agent", "text": "go on"},
                    {"speaker": "customer", "text": "three four five six c"},
                ]
            }
        ),
    ]
)


def test_plugins_check_prints_findings_and_redacted_text_never_values(tmp_path: Path) -> None:
    """Every loaded rule (the example plugin's too) over text and a corpus conversation."""
    samples = tmp_path / "samples.txt"
    samples.write_text(SAMPLES + "\n")
    settings = tmp_path / "settings.toml"
    settings.write_text('[redaction.operators]\n"pii.credit_card" = "partial"\n')
    result = _run("plugins", "check", str(samples), "--config", str(settings))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "line 1: 1 finding\n  pii.credit_card  CREDIT_CARD  utterance 0  chars 11-30  partial" in out
    assert "customer: my card is [CREDIT_CARD ****1111] thanks" in out
    assert "line 2: 0 findings\n  customer: we open at 10:30 and it costs 4.99" in out
    # the number said over two utterances, the agent speaking between: both parts redacted
    assert "customer: my national insurance number is [UK_NINO]\n  customer: [UK_NINO]" in out
    assert "go on" not in out  # utterances without findings are not repeated
    assert "4111 1111" not in out and "three four" not in out
    assert (
        out.strip()
        .splitlines()[-1]
        .startswith("3 samples, 3 findings (CREDIT_CARD 1, UK_NINO 2), 0 failed; rule set ")
    )


def test_plugins_check_json_from_stdin() -> None:
    """``-`` reads standard input; ``--json`` prints one object per sample, words included."""
    result = subprocess.run(
        [*COMMAND, "plugins", "check", "-", "--json"],
        input=SAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    first, second, third = (json.loads(line) for line in result.stdout.splitlines())
    assert first["ok"] and first["residual"] == [] and first["error"] is None
    assert {(f["rule_id"], f["field"], f["start"], f["end"]) for f in first["findings"]} == {
        ("pii.credit_card", "text", 11, 30),
        ("pii.credit_card", "words", 3, 7),
    }
    assert second["findings"] == []
    assert [u["speaker"] for u in third["redacted"]] == ["customer", "agent", "customer"]


def test_output_into_a_closed_pipe_is_no_traceback() -> None:
    """``| head -1``: the reader closes the pipe after one line; no BrokenPipeError."""
    process = subprocess.Popen(
        [*COMMAND, "plugins", "check", "-", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdin.write("my card is 4111 1111 1111 1111 thanks\n" * 1000)  # under a pipe buffer
    process.stdin.close()
    assert json.loads(process.stdout.readline())["findings"]
    process.stdout.close()
    assert process.wait(timeout=60) == 1
    with process.stderr:
        error = process.stderr.read()
    assert "Traceback" not in error and "BrokenPipe" not in error, error


def test_plugins_check_an_unreadable_file_is_one_line() -> None:
    result = _run("plugins", "check", "/nonexistent.txt")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "transcript-indexer: error: plugins check: cannot read /nonexistent.txt (No such file or directory)"
    )


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
    nothing = _run("status", env=env)
    assert nothing.returncode == 3 and f"worker not running: no status in {tmp_path}" in nothing.stdout
    (tmp_path / "status.json").write_text(
        json.dumps(
            {"time": 0, "pid": 42, "open_conversations": 3, "outbox": {"entries": 2, "bytes": 900},
             "indexed": 7, "dead_letters": 1, "channels": 2, "topics": 1005, "waiting_for_room": 0,
             "stopped": True, "completed": {"ended": 5, "idle": 2}}
        )
    )  # fmt: skip
    result = _run("status", env=env)
    assert result.returncode == 3
    assert f"worker not running in {tmp_path} (pid 42" in result.stdout
    assert "completed            ended 5, idle 2" in result.stdout
    assert "open conversations   3" in result.stdout
    assert "outbox               2 transcripts, 900 bytes" in result.stdout
    assert "channels             2 (1005 topics, 0 conversations waiting for room)" in result.stdout
    reported = json.loads(_run("status", "--json", env=env).stdout)
    assert reported["indexed"] == 7 and reported["running"] is False
    assert reported["state_dir"] == str(tmp_path)
    (tmp_path / "status.json").write_text(json.dumps({"time": time.time(), "pid": 43}))
    running = _run("status", env=env)
    assert running.returncode == 0 and f"worker running in {tmp_path} (pid 43" in running.stdout


def test_replay_with_the_sink_down_ends_and_keeps_the_transcripts(tmp_path: Path) -> None:
    """``replay`` does not wait forever for a sink that is down: after ``shutdown_grace_s``
    of failures it ends with exit 1 and one line; the transcript stays in the outbox."""
    capture = tmp_path / "capture.ndjson"
    frames = [sample("queue-conversation"), sample("transcription"), sample("transcription-ended")]
    capture.write_text("".join(json.dumps(f) + "\n" for f in frames))
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config = tmp_path / "indexer.toml"
    config.write_text("shutdown_grace_s = 1\n[plugins.opensearch]\ntimeout_s = 0.5\nretry_timeout_s = 1.0\n")
    env = {"OPENSEARCH_URL": f"http://127.0.0.1:{closed}", "INDEXER_STATE_DIR": str(tmp_path / "state")}
    result = _run("--log-level", "CRITICAL", "replay", str(capture), "--config", str(config), env=env)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("transcript-indexer: error: opensearch: ")
    assert line.endswith("gave up after 1 s: 1 transcripts wait in the outbox for the next run")
    assert len(list((tmp_path / "state" / "outbox").iterdir())) == 1


def test_replay_shows_progress_at_a_terminal_only(tmp_path: Path, opensearch_url: str) -> None:
    """A progress bar on a terminal; nothing but the log when stderr is a pipe or a file."""
    capture = tmp_path / "capture.ndjson"
    frames = [sample("queue-conversation"), sample("transcription"), sample("transcription-ended")]
    capture.write_text("".join(json.dumps(f) + "\n" for f in frames))
    env = {"OPENSEARCH_URL": opensearch_url, "INDEXER_STATE_DIR": str(tmp_path / "state")}
    piped = _run("--log-level", "WARNING", "replay", str(capture), env=env)
    assert piped.returncode == 0, piped.stderr
    assert "replay:" not in piped.stderr and "\r" not in piped.stderr
    # the summary: one count per line (not a Python dict), or one JSON object with --json
    lines = dict(line.split(maxsplit=1) for line in piped.stdout.splitlines() if not line.startswith("dead "))
    assert lines["indexed"] == "1" and lines["completed"] == "ended 1", piped.stdout
    assert "{" not in piped.stdout
    again = _run("--log-level", "WARNING", "replay", str(capture), "--json", env=env)
    summary = json.loads(again.stdout)
    assert summary["indexed"] == 1 and summary["version_conflicts"] == 1  # the same version again

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 x 100
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "OPENSEARCH_"))}
    process = subprocess.Popen(
        [*COMMAND, "--log-level", "INFO", "replay", str(capture)],
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
    # log lines (INFO here) are written above the bar, each on a line of its own
    logged = [
        re.sub(r"\x1b\[[0-9;]*m", "", line.split("\r")[-1])
        for line in shown.decode(errors="replace").replace("\r\n", "\n").split("\n")
        if "redaction rules (rule set" in line or "no Genesys Cloud settings" in line
    ]
    assert len(logged) == 2 and all(re.match(r"\d{4}-\d\d-\d\d", line) for line in logged), logged


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[completion]\ngrace_period_s = -5\n", "completion.grace_period_s must not be negative"),
        (
            "[completion]\nmax_idle_s = true\n",
            "config file: invalid value for type, expected float @ config.completion.max_idle_s",
        ),
        ("[plugins.nosuch]\nx = 1\n", "config file: [plugins.nosuch] names no loaded plugin"),
    ],
)
def test_settings_in_the_file_exit_2_with_one_line(toml: str, message: str, tmp_path: Path) -> None:
    """Negative or boolean timers and tables for plugins that are not loaded: one line, exit 2,
    before any call to Genesys or OpenSearch."""
    config = tmp_path / "indexer.toml"
    config.write_text(toml)
    env = {**GENESYS, "OPENSEARCH_URL": "http://127.0.0.1:9", "INDEXER_STATE_DIR": str(tmp_path / "state")}
    result = _run("run", "--config", str(config), env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"transcript-indexer: error: {message}")
    assert "Traceback" not in result.stderr


def test_an_unreachable_genesys_is_one_line(tmp_path: Path) -> None:
    """After the client's retries, one line naming the settings; exit 1, no traceback."""
    env = {**GENESYS, "OPENSEARCH_URL": "http://127.0.0.1:9", "INDEXER_STATE_DIR": str(tmp_path / "state")}
    result = _run("run", env={**env, "INDEXER_HTTP_LISTEN": "127.0.0.1:0"})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("transcript-indexer: error: cannot reach Genesys Cloud at http://127.0.0.1:9")
    assert "Traceback" not in result.stderr


def test_a_listening_port_in_use_is_one_line(tmp_path: Path) -> None:
    """The emulator's port (and the worker's endpoints) in use: one line naming the setting."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("emulate", "--chitchat", "2", "--port", str(port))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"transcript-indexer: error: --host/--port 127.0.0.1:{port}: cannot listen there")


def test_a_server_body_is_never_copied_into_a_message() -> None:
    """A proxy that echoes the request (bearer token included) in its error answer: only a
    code-shaped value reaches a message."""
    from indexer.errors import error_code

    assert error_code("invalid_client") == "invalid_client"
    assert error_code("security_exception") == "security_exception"
    echoed = "<html>Authorization: Bearer eyJhbGciOi.secret</html>"
    assert error_code(echoed) == "(answer not shown)" and "secret" not in error_code(echoed)
