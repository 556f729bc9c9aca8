"""The emulator as Genesys' Amazon EventBridge integration: events into an SQS queue.

Reference §7: a rule on the partner event bus targets an SQS queue; each message is the
EventBridge event (``version``, ``id``, ``detail-type``: the topic template with a literal
``{id}``, ``source``: ``aws.partner/genesys.com/cloud/<org>/<suffix>``, ``time``, ``detail``:
the notification with ``version: "2"`` and a ``timestamp``). The filter takes ``{id}`` as
a wildcard, so every conversation's events arrive, with no subscriptions.

:class:`SqsPublisher` sends every frame the emulator publishes, the way SQS delivers
them: at least once (``duplicate_rate`` of them twice), with a random delay of up to
``max_delay_s`` each (so neighbours arrive out of order), in batches of 10.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import trio

__all__ = ["SqsPublisher", "SqsTarget", "eventbridge_event"]

log = logging.getLogger(__name__)

_CONCRETE: Final = re.compile(
    r"^(v2\.(?:routing\.queues|conversations|users|detail\.events\.conversation)\.)[^.]+"
)
#: Frames waiting to be sent; more wait (the emulator's player slows down).
BUFFER: Final = 10_000


def eventbridge_event(frame: str, *, organization_id: str, rng: random.Random) -> str:
    """The EventBridge event carrying notification ``frame`` (a WebSocket text frame)."""
    notification = json.loads(frame)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {
            "version": "0",
            "id": f"{rng.getrandbits(128):032x}",
            "detail-type": _CONCRETE.sub(r"\1{id}", str(notification.get("topicName", ""))),
            "source": f"aws.partner/genesys.com/cloud/{organization_id}/transcript-indexer",
            "account": "123456789012",
            "time": now,
            "region": "us-east-1",
            "resources": [],
            "detail": {**notification, "version": "2", "timestamp": now},
        }
    )


@attrs.frozen
class SqsTarget:
    """Where and how the emulator sends its events.

    :ivar queue_url: the SQS queue (the rule's target).
    :ivar endpoint_url: the SQS endpoint (a local test server); credentials and region as
        boto3 finds them.
    :ivar duplicate_rate: share of events sent twice (SQS delivers at least once).
    :ivar max_delay_s: each message is delayed 0 to this many whole seconds (0 to 900).
    """

    queue_url: str
    endpoint_url: str | None = None
    duplicate_rate: float = 0.0
    max_delay_s: int = 0


class SqsPublisher:
    """Sends published frames to :class:`SqsTarget` as EventBridge events; run :meth:`run`."""

    def __init__(self, target: SqsTarget, *, organization_id: str, rng: random.Random) -> None:
        import boto3

        self.target = target
        self.organization_id = organization_id
        self.rng = rng
        self.client: Any = boto3.client("sqs", endpoint_url=target.endpoint_url)
        self._send, self._receive = trio.open_memory_channel[str](BUFFER)
        self.sent = 0

    def offer(self, frame: str) -> None:
        """Queue one frame (never blocks the player: past the buffer, the frame is logged and lost)."""
        copies = 2 if self.rng.random() < self.target.duplicate_rate else 1
        for _ in range(copies):
            try:
                self._send.send_nowait(frame)
            except trio.WouldBlock:
                log.warning("SQS publisher behind: a frame not sent")

    async def run(self) -> None:
        """Send what is offered, in batches of up to 10, until cancelled."""
        while True:
            batch = [await self._receive.receive()]
            while len(batch) < 10:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": eventbridge_event(
                        frame, organization_id=self.organization_id, rng=self.rng
                    ),
                    "DelaySeconds": self.rng.randint(0, self.target.max_delay_s),
                }
                for n, frame in enumerate(batch)
            ]
            call = functools.partial(
                self.client.send_message_batch, QueueUrl=self.target.queue_url, Entries=entries
            )
            await trio.to_thread.run_sync(call)
            self.sent += len(batch)
