"""The SQS source: Genesys events from an Amazon EventBridge rule's queue (reference §7).

For server integrations Genesys recommends its Amazon EventBridge integration over the
WebSocket: events are queued and retried for up to four days, and a rule's topic filter
takes a literal ``{id}`` as a wildcard, so one rule carries the transcription and
conversation events of the whole organization, with no subscriptions. The rule targets an
SQS queue; this source reads it:

- long polling (``sqs.wait_time_s``, up to 20 s), batches of 10, with boto3 in worker
  threads;
- each message body is an EventBridge event whose ``detail`` is the notification
  (:func:`indexer.serialization.parse_envelope`); a body that does not parse is
  dead-lettered in the worker's own store with its reason, like a bad frame;
- a batch is deleted only once what it carried is durable: after the detector has
  applied every message and the journal has fsynced them (a
  :class:`~indexer.completion.Checkpoint`). Until then the messages stay invisible to
  other consumers, their visibility extended every half ``sqs.visibility_timeout_s``. A
  worker that dies leaves them to reappear for another (or itself, restarted); a message
  that keeps coming back goes to the queue's dead-letter queue by its redrive policy;
- replicas sharing the queue (``sqs.shared``): a batch that told this replica a
  conversation ended is held in flight until the conversation's rebuilt document is
  delivered to every sink (post-call transcripts take minutes), while the next batches
  are received and deleted as usual (at most :data:`HELD_BATCHES` held at once). A
  replica that is lost with its state directory loses nothing: its held messages come
  back to another replica, which rebuilds those conversations;
- there are no subscriptions: changes the detector asks for are taken and ignored.

Errors: an unknown queue or refused credentials at start-up stop the worker with one line
(:class:`~indexer.errors.ConfigError`); later, failing calls are retried with backoff
(stamina).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import stamina
import trio

from indexer.completion import Checkpoint, StreamItem, SubscriptionChange
from indexer.config import SqsSettings
from indexer.deadletter import DeadLetterStore
from indexer.errors import ConfigError
from indexer.frames import accept_frame
from indexer.outbox import Outbox
from indexer.stats import Statistics

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

__all__ = ["follow_queue"]

log = logging.getLogger(__name__)

#: Messages one receive asks for (the most SQS gives).
BATCH: Final = 10
#: Replicas sharing a queue: how long a message saying a conversation ended stays in
#: flight while its document is rebuilt (post-call transcripts may take minutes), s.
REBUILD_WAIT_S: Final = 900
#: Replicas sharing a queue: how long, once the rebuilt document is in the outbox, its
#: message stays in flight until the sinks have it, s. Past it (a sink outage) the message
#: is deleted, the document being durable in this replica's outbox; with
#: :data:`REBUILD_WAIT_S` it stays well within SQS's 12 hours of visibility a message.
DELIVERY_WAIT_S: Final = 3600
#: Replicas sharing a queue: batches held in flight at once while their conversations are
#: rebuilt; receiving goes on meanwhile and waits only past this many.
HELD_BATCHES: Final = 200
#: SQS calls in progress at once (a long poll takes one; extensions and deletions never
#: wait behind it, or a message could reappear before its extension is sent).
CALLS: Final = 4
_T = TypeVar("_T")


def sqs_client(settings: SqsSettings) -> SQSClient:
    """A boto3 SQS client for ``settings`` (credentials as boto3 finds them)."""
    import boto3

    client: SQSClient = boto3.client("sqs", region_name=settings.region, endpoint_url=settings.endpoint_url)
    return client


def _transient(exc: Exception) -> bool:
    """Worth retrying: a network failure, throttling, or a server error of the service."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        code = exc.response.get("Error", {}).get("Code", "")
        return status >= 500 or status == 429 or "Throttl" in code
    return isinstance(exc, BotoCoreError)


class _Queue:
    """The calls the source makes, each in a worker thread (:data:`CALLS` at once; boto3's
    clients are thread-safe), retried."""

    def __init__(self, client: SQSClient, settings: SqsSettings, stats: Statistics) -> None:
        self.client = client
        self.settings = settings
        self.url = settings.queue_url
        self.setting = f"sqs.queue_url (INDEXER_SQS_QUEUE_URL) {settings.queue_url}"
        self.limiter = trio.CapacityLimiter(CALLS)
        self.stats = stats

    async def _call(self, call: Callable[[], _T]) -> _T:
        async for attempt in stamina.retry_context(on=_transient, attempts=None, timeout=None, wait_max=30.0):
            with attempt:
                self.stats.sqs_requests += 1
                return await trio.to_thread.run_sync(call, limiter=self.limiter, abandon_on_cancel=True)
        raise AssertionError("unreachable")  # stamina retries forever

    async def check(self) -> None:
        """:raises ConfigError: the queue does not exist, or the credentials are refused."""
        from botocore.exceptions import BotoCoreError, ClientError

        call = functools.partial(
            self.client.get_queue_attributes, QueueUrl=self.url, AttributeNames=["VisibilityTimeout"]
        )
        try:
            await trio.to_thread.run_sync(call)
        except ClientError as exc:
            raise ConfigError(f"{self.setting}: {exc.response.get('Error', {}).get('Code', '?')}") from None
        except BotoCoreError as exc:
            raise ConfigError(
                f"{self.setting}: {type(exc).__name__} (AWS credentials and region: AWS_REGION, "
                "AWS_ACCESS_KEY_ID or a role)"
            ) from None

    async def receive(self) -> list[MessageTypeDef]:
        call = functools.partial(
            self.client.receive_message,
            QueueUrl=self.url,
            MaxNumberOfMessages=BATCH,
            WaitTimeSeconds=self.settings.wait_time_s,
            VisibilityTimeout=self.settings.visibility_timeout_s,
        )
        return list((await self._call(call)).get("Messages", []))

    async def extend(self, messages: Sequence[MessageTypeDef]) -> None:
        hidden = self.settings.visibility_timeout_s
        entries: Any = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": hidden}
            for i, m in enumerate(messages)
        ]
        call = self.client.change_message_visibility_batch
        answer = await self._call(functools.partial(call, QueueUrl=self.url, Entries=entries))
        for failed in answer.get("Failed", []):  # it reappears and is taken again: harmless
            log.warning(
                "SQS did not extend a message's visibility (%s); it will be received again",
                failed.get("Code"),
            )

    async def delete(self, messages: Sequence[MessageTypeDef]) -> None:
        entries: Any = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        call = self.client.delete_message_batch
        answer = await self._call(functools.partial(call, QueueUrl=self.url, Entries=entries))
        for failed in answer.get("Failed", []):  # it reappears and is taken again: harmless
            log.warning("SQS did not delete a message (%s); it will be received again", failed.get("Code"))


async def follow_queue(
    settings: SqsSettings,
    envelopes: trio.MemorySendChannel[StreamItem],
    changes: trio.MemoryReceiveChannel[SubscriptionChange],
    dead_letters: DeadLetterStore,
    *,
    stats: Statistics,
    client: SQSClient | None = None,
    shared: Outbox | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Read the queue until cancelled, as the module docstring says; closes ``envelopes``
    on the way out (the stream ended).

    :param shared: replicas share the queue (``sqs.shared``): the worker's outbox. A
        message that told this replica a conversation ended is deleted only once the
        rebuilt document is stored (:meth:`~indexer.outbox.Outbox.wait_stored`, at most
        :data:`REBUILD_WAIT_S`; past it, the message comes back for another try) and then
        delivered (:meth:`~indexer.outbox.Outbox.wait_delivered`, at most
        :data:`DELIVERY_WAIT_S`).

    :raises ConfigError: at start-up, the queue does not exist or cannot be read.
    """
    if client is None:
        client = await trio.to_thread.run_sync(sqs_client, settings)
    queue = _Queue(client, settings, stats)
    await queue.check()
    stats.source = "sqs"
    held = trio.Semaphore(HELD_BATCHES)
    async with envelopes, changes, trio.open_nursery() as nursery:
        nursery.start_soon(_ignore, changes)
        log.info("reading %s (long polling %d s)", settings.queue_url, settings.wait_time_s)
        task_status.started()
        while True:
            messages = await queue.receive()
            if not messages:
                continue
            stats.sqs_messages += len(messages)
            for message in messages:
                await accept_frame(message.get("Body", ""), envelopes, stats=stats, dead_letters=dead_letters)
            checkpoint = Checkpoint()
            await envelopes.send(checkpoint)
            while True:
                with trio.move_on_after(settings.visibility_timeout_s / 2):
                    await checkpoint.reached.wait()
                if checkpoint.reached.is_set():
                    break
                await queue.extend(messages)
            if checkpoint.rebuilding and shared is not None:
                await nursery.start(_hold, queue, messages, checkpoint.rebuilding, shared, held)
            else:
                await queue.delete(messages)


async def _hold(
    queue: _Queue,
    messages: Sequence[MessageTypeDef],
    conversations: set[str],
    outbox: Outbox,
    held: trio.Semaphore,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep ``messages`` in flight until every one of ``conversations`` is stored in
    ``outbox`` and then delivered, and delete them. Past :data:`REBUILD_WAIT_S` without
    the documents stored, leave them to come back after the visibility timeout; past
    :data:`DELIVERY_WAIT_S` without delivery, delete them (the documents wait in the
    outbox). Reports started once it holds a place in ``held`` (the caller waits for one);
    the messages' visibility is extended from the start, while it waits for the place too."""

    async def extend() -> None:
        while True:
            await trio.sleep(queue.settings.visibility_timeout_s / 2)
            await queue.extend(messages)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(extend)
        async with held:
            task_status.started()
            with trio.move_on_after(REBUILD_WAIT_S) as rebuilding:
                async with trio.open_nursery() as stores:  # all at once: the outbox remembers
                    for conversation_id in conversations:  # the newest stores only
                        stores.start_soon(outbox.wait_stored, conversation_id)
            if rebuilding.cancelled_caught:
                log.warning(
                    "conversations of a batch not rebuilt in %d s: its messages come back", REBUILD_WAIT_S
                )
            else:
                with trio.move_on_after(DELIVERY_WAIT_S) as delivering:
                    for conversation_id in conversations:
                        await outbox.wait_delivered(conversation_id)
                if delivering.cancelled_caught:
                    log.warning(
                        "rebuilt conversations of a batch not delivered in %d s: they wait in the outbox",
                        DELIVERY_WAIT_S,
                    )
                await queue.delete(messages)
        nursery.cancel_scope.cancel()


async def _ignore(changes: trio.MemoryReceiveChannel[SubscriptionChange]) -> None:
    """EventBridge needs no subscriptions: what the detector asks for is dropped."""
    async for _ in changes:
        pass
