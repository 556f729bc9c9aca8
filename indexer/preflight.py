"""``transcript-indexer check``: the settings, Genesys Cloud and the sinks, before running.

Like ``logstash --config.test_and_exit`` or ``vector validate``: everything ``run`` does
at start-up up to, and not including, opening notification channels, so a check has no
side effect on Genesys Cloud. In order, each a :class:`Check`:

1. ``settings``: the configuration file and environment parse (else exit 2 before this);
2. ``plugins``: plugins load, with their versions, redaction rules and validators
   (:func:`~indexer.worker.build_pipeline`: no rule without ``allow_unredacted`` fails);
3. ``state dir``: the state directory can be written, its keys open what it holds, and
   whether a worker runs with it now;
4. ``genesys``: the OAuth client-credentials grant, then every configured queue resolves
   (``GET /api/v2/routing/queues``), each with its id;
5. one per sink: :meth:`~indexer.sinks.Sink.open`, which for OpenSearch installs the
   index template and the write alias (idempotent; the same as at ``run``'s start),
   proving the node is reachable and the user may manage them. Write privileges are
   exercised by the first write.

Checks after a failed one still run where they can, so one run reports every problem.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs
import httpx

from indexer.config import Config
from indexer.errors import IndexerError, SinkError
from indexer.genesys import GenesysClient
from indexer.plugins import Plugins
from indexer.sealing import check_keys
from indexer.status import is_running, read_status

__all__ = ["Check", "format_checks", "run_checks"]


@attrs.frozen
class Check:
    """One line of the report: what was checked, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str


def _state_dir(config: Config) -> Check:
    path = Path(config.state_dir)
    existing = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Check("state dir", False, f"INDEXER_STATE_DIR {path}: cannot be written")
    if not path.exists():
        return Check("state dir", True, f"{path} (created at the first run)")
    try:
        sealer = check_keys(path, config.state_keys)
    except IndexerError as exc:
        return Check("state dir", False, str(exc))
    running = is_running(read_status(path / "status.json"), time.time())
    return Check(
        "state dir",
        True,
        f"{path} (writable; {'encrypted' if sealer.enabled else 'not encrypted'}"
        f"{'; a worker runs with it now' if running else ''})",
    )


async def _genesys(config: Config, http: httpx.AsyncClient) -> Check:
    settings = config.genesys
    if settings is None:
        return Check("genesys", False, "GENESYS_REGION is not set")
    client = GenesysClient(http, settings)
    try:
        await client.access_token()
        queues = await client.resolve_queues(settings.queues)
    except IndexerError as exc:
        return Check("genesys", False, str(exc))
    except httpx.TransportError as exc:
        return Check(
            "genesys",
            False,
            f"cannot reach Genesys Cloud at {settings.login_base_url} (GENESYS_REGION, "
            f"GENESYS_LOGIN_BASE_URL, GENESYS_API_BASE_URL): {type(exc).__name__}",
        )
    names = ", ".join(f"{name} ({queue_id})" for queue_id, name in queues.items())
    return Check("genesys", True, f"token from {settings.login_base_url}; queues: {names}")


async def run_checks(
    config: Config, plugins: Plugins, *, http: httpx.AsyncClient | None = None
) -> list[Check]:
    """Every check of the module docstring, in order (the caller parsed ``config``)."""
    from indexer.worker import build_pipeline

    checks = [Check("settings", True, f"state_dir {config.state_dir}")]
    try:
        pipeline = build_pipeline(config, plugins)
    except IndexerError as exc:
        checks.append(Check("plugins", False, str(exc)))
    else:
        names = sorted(name for name, _ in plugins.pm.list_name_plugin() if name)
        checks.append(
            Check(
                "plugins",
                True,
                f"{', '.join(names)}; {len(pipeline.rules.rules)} redaction rules (rule set "
                f"{pipeline.rules.version}); {len(pipeline.validators)} validators",
            )
        )
    checks.append(_state_dir(config))
    async with httpx.AsyncClient(timeout=30.0) as client:
        checks.append(await _genesys(config, client))
    try:
        sinks = plugins.sinks(config)
    except IndexerError as exc:
        return [*checks, Check("sinks", False, str(exc))]
    if not sinks:
        checks.append(Check("sinks", False, "no indexing sink is installed"))
    for sink in sinks:
        try:
            await sink.open()
        except (SinkError, IndexerError) as exc:
            checks.append(Check(f"sink {sink.name}", False, str(exc)))
        else:
            checks.append(
                Check(f"sink {sink.name}", True, "reachable; index template and write alias in place")
            )
        finally:
            await sink.aclose()
    return checks


def format_checks(checks: list[Check]) -> str:
    """One line per check: ``ok`` or ``FAIL``, its name, what was found."""
    return "\n".join(f"{'ok' if c.ok else 'FAIL':<6}{c.name:<18}{c.detail}" for c in checks)
