"""OpenSearch sink: index template from ``schemas/``, writes through an alias, versioned bulk.

Settings (environment wins over ``[plugins.opensearch]`` in the config file):

=====================  ==========================  ====================================
environment            TOML key                    meaning
=====================  ==========================  ====================================
``OPENSEARCH_URL``     ``url``                     e.g. ``https://search.example:9200``
``OPENSEARCH_USERNAME``  ``username``              basic auth user (optional)
``OPENSEARCH_PASSWORD``  ``password``              basic auth password (optional)
``OPENSEARCH_CA_CERTS``  ``ca_certs``              CA bundle for TLS (optional)
(none)                 ``alias``                   write alias, default ``transcripts``
(none)                 ``verify_certs``            default ``true``
(none)                 ``chunk_size``              documents per bulk request, default 1000
(none)                 ``max_chunk_bytes``         bytes per bulk request, default 5 MiB
(none)                 ``timeout_s``               per request, default 60 s
(none)                 ``retry_timeout_s``         retrying one call, default 30 s; then
                                                   the batch waits in the outbox
(none)                 ``retention_days``          ISM: delete indices this many days
                                                   after creation, default 365; 0: no ISM
(none)                 ``rollover_age`` / ``_size``  ISM rollover of the write index,
                                                   default ``30d`` / ``30gb``
=====================  ==========================  ====================================

At start-up the sink installs the index template (``schemas/index-template.json``, its
pattern set to ``<alias>-*``) and, when the alias does not exist, creates
``<alias>-000001`` as its write index. Each document is written with ``_id`` =
conversation id and ``version_type=external`` (version = newest event time, epoch ms): a
retry or replay of the same version, or a stale copy, gets a 409 version conflict, which
counts as written (peers.md §1.4).

opensearch-py is synchronous (its async client needs asyncio), so every call runs in
``trio.to_thread.run_sync`` under a capacity limiter, bounded by the client's timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import attrs
import stamina
import trio
from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, SSLError, TransportError

from indexer import hookimpl
from indexer.config import Config
from indexer.document import TranscriptDocument
from indexer.errors import ConfigError, SinkError, error_code
from indexer.schemas import load_schema
from indexer.serialization import unstructure
from indexer.sinks import Sink, WriteResult

__all__ = ["OpenSearchSink", "transcript_indexer_sinks"]

log = logging.getLogger(__name__)

DEFAULT_ALIAS: Final = "transcripts"
REQUEST_TIMEOUT_S: Final = 60
RETRY_ATTEMPTS: Final = 5
RETRY_TIMEOUT_S: Final = 30.0
DEFAULT_RETENTION_DAYS: Final = 365


def _transient(exc: Exception) -> bool:
    if isinstance(exc, SSLError):  # a certificate not trusted today is not trusted in 1 s
        return False
    if isinstance(exc, OSConnectionError | ConnectionTimeout):
        return True
    return isinstance(exc, TransportError) and exc.status_code in (429, 502, 503, 504)


def _too_large(exc: SinkError) -> bool:
    """The request was refused for its size (413), not the cluster unavailable."""
    cause = exc.__cause__
    return isinstance(cause, TransportError) and cause.status_code == 413


def _ssl_reason(exc: SSLError) -> str:
    """The verification failure without addresses, e.g. ``self-signed certificate in chain``."""
    text = str(exc.info) if exc.info is not None else str(exc)
    for reason in ("self-signed certificate", "unable to get local issuer certificate", "Hostname mismatch",
                   "certificate has expired", "IP address mismatch"):  # fmt: skip
        if reason.lower() in text.lower():
            return reason
    return "certificate verify failed"


def _not_tls(exc: SSLError) -> bool:
    """The server answered a TLS handshake with something else (plain HTTP): OpenSSL's
    ``wrong version number``, ``record layer failure`` or ``http request``."""
    text = f"{exc} {exc.info}".lower()
    return any(reason in text for reason in ("wrong version number", "record layer failure", "http request"))


@attrs.define
class OpenSearchSink:
    """Writes transcript documents to OpenSearch through a write alias."""

    url: str
    alias: str = DEFAULT_ALIAS
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    verify_certs: bool = True
    ca_certs: str | None = None
    chunk_size: int = 1000
    max_chunk_bytes: int = 5 * 1024 * 1024
    timeout_s: float = REQUEST_TIMEOUT_S
    retry_timeout_s: float = RETRY_TIMEOUT_S
    retention_days: int = DEFAULT_RETENTION_DAYS
    rollover_age: str = "30d"
    rollover_size: str = "30gb"
    name: str = "opensearch"
    _client: OpenSearch | None = None
    _installed: bool = False
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(2))

    @property
    def client(self) -> OpenSearch:
        """The opensearch-py client (created on first use)."""
        if self._client is None:
            auth = (self.username, self.password or "") if self.username else None
            self._client = OpenSearch(
                hosts=[self.url],
                http_auth=auth,
                verify_certs=self.verify_certs,
                ca_certs=self.ca_certs,
                timeout=self.timeout_s,
            )
        return self._client

    async def _call(self, fn: Any, *args: Any) -> Any:
        def with_retries() -> Any:
            for attempt in stamina.retry_context(
                on=_transient, attempts=RETRY_ATTEMPTS, timeout=self.retry_timeout_s
            ):
                with attempt:
                    return fn(*args)
            raise AssertionError("unreachable")

        try:
            return await trio.to_thread.run_sync(with_retries, limiter=self._limiter)
        except SSLError as exc:
            if _not_tls(exc):
                raise SinkError(
                    "OpenSearch at OPENSEARCH_URL does not answer in TLS (a plain-HTTP server?): "
                    "use http:// in OPENSEARCH_URL, or the cluster's TLS port"
                ) from exc
            raise SinkError(
                "OpenSearch at OPENSEARCH_URL: TLS verification failed; set OPENSEARCH_CA_CERTS to "
                f"the CA bundle that signed the cluster's certificate ({_ssl_reason(exc)})"
            ) from exc
        except TransportError as exc:
            raise SinkError(
                f"OpenSearch at OPENSEARCH_URL: {exc.status_code} {error_code(exc.error)}"
            ) from exc
        except Exception as exc:
            raise SinkError(f"OpenSearch at OPENSEARCH_URL unreachable: {type(exc).__name__}") from exc

    def _install(self) -> None:
        managed = bool(self.retention_days) and self._install_policy()
        template = load_schema("index-template.json")
        template["index_patterns"] = [f"{self.alias}-*"]
        if managed:  # a cluster without ISM rejects the setting
            template["template"]["settings"]["plugins.index_state_management.rollover_alias"] = self.alias
        self.client.indices.put_index_template(name=self.alias, body=template)
        audit = load_schema("audit-index-template.json")
        audit["index_patterns"] = [self.audit_index]
        self.client.indices.put_index_template(name=self.audit_index, body=audit)
        if not self.client.indices.exists(index=self.audit_index):
            try:
                self.client.indices.create(index=self.audit_index)
            except TransportError as exc:
                if exc.error != "resource_already_exists_exception":  # another replica won
                    raise
        # Alias lookups name the indices: without them the security plugin checks the
        # request against every index and refuses the worker's user (403).
        if not self.client.indices.exists_alias(name=self.alias, index=f"{self.alias}-*"):
            self.client.indices.create(
                index=f"{self.alias}-000001", body={"aliases": {self.alias: {"is_write_index": True}}}
            )
            log.info("created index %s-000001 behind alias %s", self.alias, self.alias)
        if managed:
            # New indices get the policy from its ism_template; these may predate it.
            self.client.plugins.index_management.add_policy(
                f"{self.alias}-*", body={"policy_id": f"{self.alias}-retention"}
            )

    @property
    def audit_index(self) -> str:
        """The redaction audit index, ``<alias>_audit`` (outside the alias and its ISM policy)."""
        return f"{self.alias}_audit"

    def policy(self) -> dict[str, Any]:
        """The ISM policy (``schemas/ism-policy.json``) for this alias and these settings."""
        body: dict[str, Any] = load_schema("ism-policy.json")
        hot, _ = body["policy"]["states"]
        hot["actions"][0]["rollover"] = {
            "min_index_age": self.rollover_age,
            "min_primary_shard_size": self.rollover_size,
        }
        hot["transitions"][0]["conditions"]["min_index_age"] = f"{self.retention_days}d"
        body["policy"]["ism_template"][0]["index_patterns"] = [f"{self.alias}-*"]
        return body

    def _install_policy(self) -> bool:
        """Create or update the ISM policy; ``False`` when the cluster has no ISM plugin.

        Without ISM it logs that indices are neither rolled over nor deleted.
        """
        ism = self.client.plugins.index_management
        policy_id = f"{self.alias}-retention"
        try:
            try:
                ism.put_policy(policy_id, body=self.policy())
            except TransportError as exc:
                if exc.status_code != 409:
                    raise
                current = ism.get_policy(policy_id)
                ism.put_policy(
                    policy_id,
                    body=self.policy(),
                    params={"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]},
                )
        except TransportError as exc:
            if exc.status_code not in (400, 404, 405):
                raise
            log.warning(
                "OpenSearch at OPENSEARCH_URL has no Index State Management (%s): indices are not "
                "rolled over or deleted; plugins.opensearch.retention_days has no effect",
                exc.status_code,
            )
            return False
        log.info("ISM policy %s: rollover at %s or %s, delete after %d days",
                 policy_id, self.rollover_age, self.rollover_size, self.retention_days)  # fmt: skip
        return True

    async def open(self) -> None:
        """Install the index template and the write alias.

        :raises SinkError: OpenSearch cannot be reached (after the retries); the next
            write installs first.
        """
        await self._ensure_installed()

    async def _ensure_installed(self) -> None:
        if not self._installed:
            await self._call(self._install)
            self._installed = True

    def _homes(self, documents: Sequence[TranscriptDocument]) -> dict[str, str]:
        """Conversation id → the index already holding its document.

        After a rollover the alias writes to a new index; an update must replace the
        document where it is, or the alias would hold two copies. Only the indices behind
        the alias that are not its write index are looked in, with a real-time multi-get:
        a search would miss a copy written less than a refresh interval ago (found on a
        real node; osmem-server searches in real time). Without a rollover yet, no lookup.
        """
        indices = self.client.indices.get_alias(name=self.alias, index=f"{self.alias}-*")
        older = [
            index
            for index, entry in indices.items()
            if len(indices) > 1 and not entry["aliases"][self.alias].get("is_write_index", False)
        ]
        if not older:
            return {}
        docs = [{"_index": index, "_id": d.conversation_id} for index in older for d in documents]
        response = self.client.mget(body={"docs": docs}, _source="false")
        return {doc["_id"]: doc["_index"] for doc in response["docs"] if doc.get("found")}

    def _actions(self, documents: Sequence[TranscriptDocument]) -> Iterator[dict[str, Any]]:
        """Per document: the transcript (without its audit entries) and its audit record."""
        homes = self._homes(documents)
        for d in documents:
            source = unstructure(d)
            findings = source["redaction"].pop("findings", []) if source.get("redaction") else []
            common = {"_id": d.conversation_id, "version": d.version, "version_type": "external"}
            yield {
                "_op_type": "index",
                "_index": homes.get(d.conversation_id, self.alias),
                **common,
                "_source": source,
            }
            if d.redaction is not None:
                audit = {
                    "conversation_id": d.conversation_id,
                    "version": d.version,
                    "ended_at": source.get("ended_at"),
                    "complete": d.complete,
                    "rule_set_version": d.redaction.rule_set_version,
                    "counts": source["redaction"]["counts"],
                    "findings": findings,
                }
                yield {"_op_type": "index", "_index": self.audit_index, **common, "_source": audit}

    def _bulk(self, documents: Sequence[TranscriptDocument]) -> list[WriteResult]:
        """One result per document; a document is written when its transcript and its audit
        record are (a version conflict counts as written); either failing fails it."""
        results: dict[str, WriteResult] = {}
        for ok, item in helpers.streaming_bulk(
            self.client,
            self._actions(documents),
            chunk_size=self.chunk_size,
            max_chunk_bytes=self.max_chunk_bytes,
            raise_on_error=False,
            max_retries=5,
            initial_backoff=1,
            max_backoff=30,
        ):
            info = item.get("index", {})
            conversation_id = str(info.get("_id"))
            if ok:
                result = WriteResult(conversation_id)
            elif info.get("status") == 409:
                result = WriteResult(conversation_id, conflict=True)
            else:
                error = info.get("error") or {}
                kind = error.get("type", "error") if isinstance(error, dict) else "error"
                status = info.get("status")
                transient = isinstance(status, int) and (status == 429 or status >= 500)
                result = WriteResult(conversation_id, error=f"{status} {kind}", retry=transient)
            if info.get("_index") != self.audit_index:
                results[conversation_id] = result
            elif result.error is not None:  # the audit record follows its transcript; both must be in
                results[conversation_id] = attrs.evolve(result, error=f"audit: {result.error}")
        return [results[d.conversation_id] for d in documents if d.conversation_id in results]

    async def write(self, documents: Sequence[TranscriptDocument]) -> Sequence[WriteResult]:
        """Bulk-index ``documents`` in chunks of ``chunk_size`` / ``max_chunk_bytes``.

        After a failure the template and alias are installed again first, so a node that
        came back empty never gets documents under a dynamic mapping. A batch the cluster
        refuses for its size (413) is split until the document too large is alone: that one
        is rejected (dead-lettered), the others are written; nothing stalls behind it.
        """
        await self._ensure_installed()
        try:
            results: list[WriteResult] = await self._call(self._bulk, documents)
        except SinkError as exc:
            if not _too_large(exc):
                self._installed = False
                raise
            # The cluster refused the request's size (413, http.max_content_length): halve
            # the batch until the document that does not fit is alone; it alone is rejected,
            # for good, and the rest is written.
            if len(documents) == 1:
                return [
                    WriteResult(
                        documents[0].conversation_id,
                        error="413 document larger than the cluster accepts (http.max_content_length)",
                    )
                ]
            half = len(documents) // 2
            return [*await self.write(documents[:half]), *await self.write(documents[half:])]
        return results

    async def aclose(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            await trio.to_thread.run_sync(self._client.close)


def sink_from_settings(settings: dict[str, Any], env: dict[str, str]) -> OpenSearchSink:
    """Build the sink from ``[plugins.opensearch]`` and environment variables.

    :raises ConfigError: ``OPENSEARCH_URL`` is missing or a setting has the wrong type.
    """
    url = env.get("OPENSEARCH_URL") or settings.get("url")
    if not url:
        raise ConfigError("OPENSEARCH_URL is not set (or plugins.opensearch.url in the config file)")
    known = {
        "url",
        "alias",
        "username",
        "password",
        "verify_certs",
        "ca_certs",
        "chunk_size",
        "max_chunk_bytes",
        "timeout_s",
        "retry_timeout_s",
        "retention_days",
        "rollover_age",
        "rollover_size",
    }
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"config file: unknown key plugins.opensearch.{unknown[0]}")
    try:
        return OpenSearchSink(
            url=str(url),
            alias=str(settings.get("alias", DEFAULT_ALIAS)),
            username=env.get("OPENSEARCH_USERNAME") or settings.get("username"),
            password=env.get("OPENSEARCH_PASSWORD") or settings.get("password"),
            verify_certs=bool(settings.get("verify_certs", True)),
            ca_certs=env.get("OPENSEARCH_CA_CERTS") or settings.get("ca_certs"),
            chunk_size=int(settings.get("chunk_size", 1000)),
            max_chunk_bytes=int(settings.get("max_chunk_bytes", 5 * 1024 * 1024)),
            timeout_s=float(settings.get("timeout_s", REQUEST_TIMEOUT_S)),
            retry_timeout_s=float(settings.get("retry_timeout_s", RETRY_TIMEOUT_S)),
            retention_days=int(settings.get("retention_days", DEFAULT_RETENTION_DAYS)),
            rollover_age=str(settings.get("rollover_age", "30d")),
            rollover_size=str(settings.get("rollover_size", "30gb")),
        )
    except (TypeError, ValueError):
        raise ConfigError("config file: plugins.opensearch sizes and timeouts must be numbers") from None


@hookimpl
def transcript_indexer_sinks(config: Config) -> Iterable[Sink]:
    """The OpenSearch sink, configured from ``[plugins.opensearch]`` and ``OPENSEARCH_*``."""
    import os

    return [sink_from_settings(dict(config.plugin_settings("opensearch")), dict(os.environ))]
