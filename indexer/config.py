"""Settings: a TOML file, then environment variables, which win.

::

    config = load_config(Path("indexer.toml"), os.environ)

Every error is a :class:`~indexer.errors.ConfigError` whose one-line message names the
environment variable or TOML key at fault. Unknown TOML keys are errors (typos fail
loudly); ``[plugins.<name>]`` tables are passed to plugins unchecked, and each plugin
checks its own.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from indexer.document import MAX_PARTICIPANTS, NESTED_OBJECTS_LIMIT
from indexer.errors import ConfigError, MalformedMessage
from indexer.redaction import OPERATORS, Operators
from indexer.sealing import parse_keys

__all__ = [
    "REGIONS",
    "CompletionSettings",
    "Config",
    "GenesysSettings",
    "RecoverySettings",
    "RedactionSettings",
    "StreamSettings",
    "load_config",
    "parse_shard",
    "shard_queues",
]

#: Region name (SDK enum, reference §1) → domain; API is ``api.{domain}``, login ``login.{domain}``.
REGIONS: Final[Mapping[str, str]] = {
    "us_east_1": "mypurecloud.com",
    "us_east_2": "use2.us-gov-pure.cloud",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "eu_west_1": "mypurecloud.ie",
    "eu_west_2": "euw2.pure.cloud",
    "eu_central_1": "mypurecloud.de",
    "eu_central_2": "euc2.pure.cloud",
    "eusc_de_east_1": "edee1.eusc-pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
    "ap_southeast_2": "mypurecloud.com.au",
    "ap_northeast_1": "mypurecloud.jp",
    "ap_northeast_2": "apne2.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
}

#: Channels a pool may hold: half of the 20 per client (reference §3.8), for handovers.
MAX_CHANNELS: Final = 10


@attrs.frozen
class GenesysSettings:
    """Where and as whom to connect to Genesys Cloud.

    :ivar queues: queue names or ids whose conversations are followed.
    """

    api_base_url: str
    login_base_url: str
    client_id: str
    client_secret: str = attrs.field(repr=False)
    queues: tuple[str, ...]


@attrs.frozen
class RedactionSettings:
    """How findings are replaced (:mod:`indexer.redaction`).

    :ivar operators: rule id or entity type → ``mask``, ``partial`` or ``hash``; the
        rest are masked. ``[redaction.operators]`` in the config file.
    :ivar hmac_key: the secret of ``hash``; from ``INDEXER_REDACTION_HMAC_KEY`` (keep it
        out of the file). Changing it changes every hash.
    :ivar allow_unredacted: index transcripts when no redaction rule is loaded (no PII
        plugin, or it is disabled). Without it the worker refuses to start then.
    :ivar time_limit_s: the longest validation and redaction of one conversation may take
        (in a worker process, :mod:`indexer.isolation`); past it the conversation is
        quarantined, s.
    """

    operators: Mapping[str, str] = attrs.field(factory=dict)
    hmac_key: str | None = attrs.field(default=None, repr=False)
    allow_unredacted: bool = False
    time_limit_s: float = 120.0

    def build(self) -> Operators:
        """The :class:`~indexer.redaction.Operators` these settings describe."""
        key = self.hmac_key.encode() if self.hmac_key else None
        return Operators(by_rule=dict(self.operators), hmac_key=key)


def _check_redaction(settings: RedactionSettings) -> None:
    for name, operator in settings.operators.items():
        if operator not in OPERATORS:
            raise ConfigError(
                f"redaction.operators.{name}: unknown operator {operator!r} (one of {', '.join(OPERATORS)})"
            )
        if operator == "hash" and not settings.hmac_key:
            raise ConfigError(f"INDEXER_REDACTION_HMAC_KEY is not set (redaction.operators.{name} is hash)")
    if settings.hmac_key is not None and len(settings.hmac_key) < 16:
        raise ConfigError("INDEXER_REDACTION_HMAC_KEY must be at least 16 characters")


@attrs.frozen
class CompletionSettings:
    """When a conversation counts as complete (all in seconds).

    :ivar grace_period_s: wait after the end signals for trailing messages.
    :ivar max_idle_s: close a conversation with no event for this long. The default is
        just over the 5-minute transcription keep-alive interval (reference §4.2).
    :ivar max_age_s: close a conversation this long after its first event.
    :ivar reopen_window_s: how long a closed conversation is kept; a late utterance in
        that time re-opens it and its document is replaced by a higher version.
    :ivar max_open_conversations: at this many open conversations, a new one first closes
        the least recently active (reason ``capacity``, ``complete: false``).
    :ivar max_utterances: utterances kept per conversation; more are dead-lettered.
    :ivar max_transcript_backlog: live sockets, control before data: transcription messages
        that may wait to be tracked (5.4 KB each on average in the demo's calls); past it a
        new one's conversation is shed, and completed from the post-call transcript
        (:mod:`indexer.completion`).
    """

    grace_period_s: float = 5.0
    max_idle_s: float = 330.0
    max_age_s: float = 4 * 3600.0
    reopen_window_s: float = 120.0
    max_open_conversations: int = 20_000
    max_utterances: int = 10_000
    max_transcript_backlog: int = 5_000


@attrs.frozen
class RecoverySettings:
    """Gap recovery from the REST API (all in seconds); see :mod:`indexer.recovery`.

    :ivar enabled: recover at all (needs analytics and recording/STA permissions).
    :ivar lookback_s: at start-up, recover conversations that started this long before;
        after a gap, also those that started in an earlier gap at most this long before.
    :ivar post_call_wait_s: how long to keep asking for a post-call transcript (or a
        digital conversation's messages) before the document is indexed as it is, marked
        ``complete: false``.
    :ivar post_call_retry_s: how often to ask while it is not ready.
    :ivar post_call_follow_up_s: after that, keep asking (waits doubling from
        ``post_call_wait_s`` up to ``post_call_follow_up_max_interval_s``) for this long
        after the first ask, and replace the document when the transcript comes: it can
        take hours (reference §10 item 3). ``0`` stops at ``post_call_wait_s``.
    :ivar post_call_follow_up_max_interval_s: the longest wait between two follow-up asks.
    """

    enabled: bool = True
    lookback_s: float = 3600.0
    post_call_wait_s: float = 300.0
    post_call_retry_s: float = 10.0
    post_call_follow_up_s: float = 24 * 3600.0
    post_call_follow_up_max_interval_s: float = 1800.0


#: The smallest ``stream.max_frame_bytes`` (64 KiB).
MIN_FRAME_BYTES: Final = 64 * 1024
#: The socket reads frames up to this many times ``stream.max_frame_bytes`` (to dead-letter
#: them whole); a larger frame closes it.
FRAME_READ_FACTOR: Final = 4


@attrs.frozen
class StreamSettings:
    """The notification WebSocket (all in seconds).

    :ivar heartbeat_timeout_s: treat the socket as dead after this long without any
        message (heartbeats come about every 30 s, reference §3.6).
    :ivar ping_interval_s: send ``{"message":"ping"}`` this often.
    :ivar capture_path: append every received frame to this NDJSON file, for ``replay``.
        The frames hold unredacted transcripts: protect the file like the source data.
    :ivar max_channels: channels the pool may hold, 1,000 topics each (reference §3.8).
        At most 10: a client has 20 channels, and each may need a second one during a
        handover.
    :ivar channel_max_age_s: replace a channel this long after creating it (channels live
        24 h, reference §3.8), and always before its token is renewed.
    :ivar max_frame_bytes: the largest frame taken, in bytes (a long turn makes frames over
        1 MiB); a larger one is dead-lettered (``frame_too_large``) and the socket kept, up
        to :data:`FRAME_READ_FACTOR` times this size, past which the socket closes (a gap).
    """

    heartbeat_timeout_s: float = 90.0
    ping_interval_s: float = 30.0
    capture_path: str | None = None
    max_channels: int = 10
    channel_max_age_s: float = 23 * 3600.0
    max_frame_bytes: int = 16 * 1024 * 1024


@attrs.frozen
class SqsSettings:
    """The SQS source: the queue an Amazon EventBridge rule delivers Genesys events to
    (reference §7). AWS credentials come as boto3 finds them (environment, profile, role).

    :ivar queue_url: ``INDEXER_SQS_QUEUE_URL``; empty unless ``source = "sqs"``.
    :ivar region: ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` when not set here.
    :ivar endpoint_url: another SQS endpoint (a VPC endpoint, or a local test server).
    :ivar wait_time_s: long polling: how long one receive waits for messages (0 to 20 s).
    :ivar visibility_timeout_s: how long a received message stays hidden from other
        replicas; extended while it is in work, s.
    :ivar shared: several replicas read the queue (any may receive any event): each
        conversation is built from the Platform API by the replica that sees it end.
    """

    queue_url: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    wait_time_s: int = 20
    visibility_timeout_s: int = 60
    shared: bool = False


@attrs.frozen
class Config:
    """All settings of one worker process.

    :ivar genesys: ``None`` for commands that do not talk to Genesys Cloud (``replay``).
    :ivar state_dir: directory for the outbox and the dead-letter store.
    :ivar shutdown_grace_s: how long a SIGTERM/SIGINT drain may take, in seconds.
    :ivar outbox_max_bytes: disk the outbox may use; when full, intake waits (backpressure).
    :ivar shard: ``"i/n"``: this replica follows the i-th (0-based) of n shares of the
        configured queues (:func:`shard_queues`); ``None`` follows them all.
    :ivar source: ``websocket`` (notification channels, the default) or ``sqs`` (an
        Amazon EventBridge rule's queue, :class:`SqsSettings`); ``INDEXER_SOURCE``.
    :ivar http_listen: ``host:port`` of the metrics and health endpoints
        (:mod:`indexer.monitoring`); empty to serve none.
    :ivar http_live: serve the live view (``GET /live``, redacted utterances as they
        arrive, for ``transcript-indexer watch``) on ``http_listen`` too.
    :ivar plugins: ``[plugins.<name>]`` tables, for plugins to read.
    :ivar dead_letters_max_bytes: the dead-letter file is rotated past this size.
    :ivar dead_letters_retention_days: rotated dead-letter files are deleted this long
        after their last write (they hold unredacted input).
    :ivar state_keys: Fernet keys that encrypt the journal, outbox and dead letters
        (:mod:`indexer.sealing`); from ``INDEXER_STATE_KEYS``, comma-separated, the first
        encrypts. Empty: not encrypted.
    """

    genesys: GenesysSettings | None = None
    completion: CompletionSettings = CompletionSettings()
    stream: StreamSettings = StreamSettings()
    recovery: RecoverySettings = RecoverySettings()
    redaction: RedactionSettings = RedactionSettings()
    source: str = "websocket"
    sqs: SqsSettings = SqsSettings()
    state_dir: str = "state"
    shutdown_grace_s: float = 30.0
    outbox_max_bytes: int = 1024**3
    dead_letters_max_bytes: int = 64 * 1024**2
    dead_letters_retention_days: float = 30.0
    http_listen: str = "127.0.0.1:9464"
    http_live: bool = True
    shard: str | None = None
    plugins: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    state_keys: tuple[str, ...] = attrs.field(default=(), repr=False)

    def plugin_settings(self, name: str) -> Mapping[str, Any]:
        """The ``[plugins.<name>]`` table, empty when absent."""
        return self.plugins.get(name, {})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:  # a directory, no permission …
        raise ConfigError(f"config file {path}: {exc.strerror or type(exc).__name__}") from None


def _genesys(table: Mapping[str, Any], env: Mapping[str, str]) -> GenesysSettings:
    def setting(var: str, key: str) -> str | None:
        value = env.get(var) or table.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"genesys.{key} must be a string")
        return value

    def required(var: str, key: str) -> str:
        value = setting(var, key)
        if not value:
            raise ConfigError(f"{var} is not set (or genesys.{key} in the config file)")
        return value

    api = setting("GENESYS_API_BASE_URL", "api_base_url")
    login = setting("GENESYS_LOGIN_BASE_URL", "login_base_url")
    region = setting("GENESYS_REGION", "region")
    if not (api and login):
        if not region:
            raise ConfigError(
                "GENESYS_REGION is not set (or GENESYS_API_BASE_URL and GENESYS_LOGIN_BASE_URL)"
            )
        domain = REGIONS.get(region.lower().replace("-", "_"))
        if domain is None:
            raise ConfigError(f"GENESYS_REGION {region!r} is not one of: {', '.join(REGIONS)}")
        api, login = api or f"https://api.{domain}", login or f"https://login.{domain}"
    for var, url in (("GENESYS_API_BASE_URL", api), ("GENESYS_LOGIN_BASE_URL", login)):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{var} must start with http:// or https://")

    queues_env = env.get("GENESYS_QUEUES")
    raw_queues: Any = queues_env.split(",") if queues_env else table.get("queues", [])
    if not isinstance(raw_queues, list) or not all(isinstance(q, str) for q in raw_queues):
        raise ConfigError("genesys.queues must be a list of queue names or ids")
    queues = tuple(q.strip() for q in raw_queues if q.strip())
    if not queues:
        raise ConfigError("GENESYS_QUEUES is not set (or genesys.queues in the config file)")
    unknown = set(table) - {
        "region",
        "api_base_url",
        "login_base_url",
        "client_id",
        "client_secret",
        "queues",
    }
    if unknown:
        raise ConfigError(f"config file: unknown key genesys.{sorted(unknown)[0]}")
    return GenesysSettings(
        api_base_url=api.rstrip("/"),
        login_base_url=login.rstrip("/"),
        client_id=required("GENESYS_CLIENT_ID", "client_id"),
        client_secret=required("GENESYS_CLIENT_SECRET", "client_secret"),
        queues=queues,
    )


def load_config(path: Path | None, env: Mapping[str, str], *, need_genesys: bool = True) -> Config:
    """Build the settings from an optional TOML file and the environment.

    :param path: the TOML file, or ``None`` for environment and defaults only.
    :param env: usually ``os.environ``.
    :param need_genesys: whether the Genesys Cloud settings are required.
    :raises ConfigError: naming the first missing or invalid setting.
    """
    from indexer.serialization import structure

    data = _read_toml(path) if path is not None else {}
    genesys_table = data.pop("genesys", {})
    plugins = data.pop("plugins", {})
    if env.get("INDEXER_STATE_DIR"):
        data["state_dir"] = env["INDEXER_STATE_DIR"]
    if "INDEXER_HTTP_LISTEN" in env:
        data["http_listen"] = env["INDEXER_HTTP_LISTEN"]
    if env.get("INDEXER_SHARD"):
        data["shard"] = env["INDEXER_SHARD"]
    if env.get("INDEXER_SOURCE"):
        data["source"] = env["INDEXER_SOURCE"]
    sqs = data.setdefault("sqs", {})
    if isinstance(sqs, dict):
        for variable, key in (
            ("INDEXER_SQS_QUEUE_URL", "queue_url"),
            ("INDEXER_SQS_ENDPOINT_URL", "endpoint_url"),
            ("AWS_REGION", "region"),
            ("AWS_DEFAULT_REGION", "region"),
        ):
            if env.get(variable) and (key != "region" or "region" not in sqs):
                sqs[key] = env[variable]
        if env.get("INDEXER_SQS_SHARED"):
            sqs["shared"] = env["INDEXER_SQS_SHARED"].strip().lower() in ("1", "true", "yes")
    if env.get("INDEXER_REDACTION_HMAC_KEY"):
        redaction = data.setdefault("redaction", {})
        if isinstance(redaction, dict):
            redaction["hmac_key"] = env["INDEXER_REDACTION_HMAC_KEY"]
    if "state_keys" in data:
        raise ConfigError("config file: state_keys is a secret; set INDEXER_STATE_KEYS in the environment")
    if env.get("INDEXER_STATE_KEYS"):
        data["state_keys"] = parse_keys(env["INDEXER_STATE_KEYS"])
    if not isinstance(plugins, dict) or not all(isinstance(v, dict) for v in plugins.values()):
        raise ConfigError("config file: [plugins] must hold one table per plugin")
    try:
        base = structure(data, Config, what="config")
    except MalformedMessage as exc:
        raise ConfigError(f"config file: {exc.reason}") from None
    _check_numbers(base, "")
    if base.http_listen:
        parse_listen(base.http_listen)
    if base.shard is not None:
        parse_shard(base.shard)
    if base.source not in ("websocket", "sqs"):
        raise ConfigError(f"source (INDEXER_SOURCE) must be websocket or sqs, not {base.source!r}")
    if base.source == "sqs" and not base.sqs.queue_url:
        raise ConfigError("source = sqs needs sqs.queue_url (INDEXER_SQS_QUEUE_URL)")
    if base.source == "sqs" and base.sqs.shared and not base.recovery.enabled:
        raise ConfigError("sqs.shared needs recovery.enabled: conversations are built from the Platform API")
    if not 0 <= base.sqs.wait_time_s <= 20:
        raise ConfigError("sqs.wait_time_s must be between 0 and 20 (SQS long polling)")
    most = NESTED_OBJECTS_LIMIT - MAX_PARTICIPANTS
    if not 1 <= base.completion.max_utterances <= most:
        raise ConfigError(
            f"completion.max_utterances must be between 1 and {most}: the index template's nested-object "
            f"limit ({NESTED_OBJECTS_LIMIT}) holds the utterances and up to {MAX_PARTICIPANTS} participants"
        )
    if base.completion.max_transcript_backlog < 1:
        raise ConfigError("completion.max_transcript_backlog must be at least 1")
    if not 1 <= base.stream.max_channels <= MAX_CHANNELS:
        raise ConfigError(f"stream.max_channels must be between 1 and {MAX_CHANNELS}")
    if base.stream.max_frame_bytes < MIN_FRAME_BYTES:
        raise ConfigError(f"stream.max_frame_bytes must be at least {MIN_FRAME_BYTES} (64 KiB)")
    _check_redaction(base.redaction)
    genesys = _genesys(genesys_table, env) if need_genesys else None
    return attrs.evolve(base, genesys=genesys, plugins=plugins)


def _check_numbers(settings: Any, prefix: str) -> None:
    """Every number of the settings is a number (not a boolean) and not negative.

    :raises ConfigError: naming the setting.
    """
    for field in attrs.fields(type(settings)):
        value = getattr(settings, field.name)
        name = f"{prefix}{field.name}"
        if attrs.has(type(value)):
            _check_numbers(value, f"{name}.")
        elif isinstance(value, bool) and field.type in ("int", "float", int, float):
            raise ConfigError(f"{name} must be a number, not {str(value).lower()}")
        elif isinstance(value, int | float) and not isinstance(value, bool) and not value >= 0:
            raise ConfigError(f"{name} must not be negative")


def parse_listen(text: str) -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)``, port 0 to 65535 (0: any free port).

    :raises ConfigError: naming ``INDEXER_HTTP_LISTEN`` / ``http_listen``.
    """
    host, colon, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not colon or not host or not 0 <= number <= 65535:
        raise ConfigError(
            f"http_listen {text!r} (INDEXER_HTTP_LISTEN) must be host:port with a port from 0 to 65535, "
            "e.g. 127.0.0.1:9464, or empty to serve no endpoints"
        )
    return host.strip("[]"), number


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 <= i < n``.

    :raises ConfigError: naming ``INDEXER_SHARD`` / ``shard`` / ``--shard``.
    """
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ConfigError(f"shard {text!r} (INDEXER_SHARD, --shard) must be i/n with 0 <= i < n, e.g. 0/3")
    return i, n


def shard_queues(queue_names: Mapping[str, str], shard: str | None) -> dict[str, str]:
    """The queues (id → name) one replica follows: the queues sorted by id, dealt round-robin.

    Every replica with the same queue list and ``n`` computes the same split, so the
    shares are disjoint and cover every queue. A queue that moves to another replica
    when the list changes may be indexed by both for a while, which versioned documents
    make harmless.

    :raises ConfigError: the shard is malformed, or it gets no queue (more replicas than queues).
    """
    if shard is None:
        return dict(queue_names)
    i, n = parse_shard(shard)
    mine = {qid: queue_names[qid] for k, qid in enumerate(sorted(queue_names)) if k % n == i}
    if not mine:
        raise ConfigError(
            f"shard {shard}: {len(queue_names)} queues leave this replica none (GENESYS_QUEUES)"
        )
    return mine
