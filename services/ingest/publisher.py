"""Kafka adapter of the ingest service: an idempotent `acks=all` producer, and per-request batches
that bound how many messages wait for their ack (backpressure on a large upload)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from services.ingest.validation import Message

log = logging.getLogger(__name__)


class KafkaUnavailableError(Exception):
    """Kafka did not acknowledge in time; nothing of the request may be reported accepted."""


class Publisher:
    def __init__(self, bootstrap_servers: str, timeout_seconds: float, max_in_flight: int) -> None:
        self._bootstrap_servers = bootstrap_servers
        self.timeout_seconds = timeout_seconds
        self._timeout_ms = int(timeout_seconds * 1000)
        self._max_in_flight = max_in_flight
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        # Started on first use, not at boot: the service comes up (and says it is not ready)
        # while Kafka is down, and starts producing as soon as Kafka is back.
        if self._producer is not None:
            return self._producer
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap_servers,
                    client_id="tpmap-ingest",
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    max_batch_size=512 * 1024,
                    request_timeout_ms=self._timeout_ms,
                )
                try:
                    await asyncio.wait_for(producer.start(), self._timeout_ms / 1000)
                except (KafkaError, OSError, TimeoutError) as error:
                    await producer.stop()
                    raise KafkaUnavailableError(str(error) or type(error).__name__) from error
                self._producer = producer
        return self._producer

    async def ready(self) -> bool:
        try:
            producer = await self.producer()
            return bool(await asyncio.wait_for(producer.client.force_metadata_update(), 3))
        except (KafkaUnavailableError, KafkaError, OSError, TimeoutError):
            return False

    def batch(self) -> PublishBatch:
        return PublishBatch(self, self._max_in_flight)

    async def send_all(self, messages: Iterable[Message]) -> None:
        batch = self.batch()
        for message in messages:
            await batch.send(message)
        await batch.wait()

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def discard(self) -> None:
        """Drops the producer with whatever it has not delivered, so that a request answered 503
        is not published later behind the client's back (which its resend would duplicate).

        An idempotent aiokafka producer retries undelivered batches forever and has no call to
        drop them; cancelling its sender task is the only way (aiokafka internals)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        sender = getattr(producer, "_sender", None)
        task = getattr(sender, "sender_task", None)
        if task is not None:
            task.cancel()
        try:
            await asyncio.wait_for(producer.stop(), self.timeout_seconds)
        except (KafkaError, OSError, TimeoutError) as error:
            log.warning("discarded producer did not stop cleanly: %s", error)


class PublishBatch:
    """The messages of one request: `wait()` returns once Kafka has acknowledged every one."""

    def __init__(self, publisher: Publisher, max_in_flight: int) -> None:
        self._publisher = publisher
        self._max_in_flight = max_in_flight
        self._pending: list[asyncio.Future[object]] = []
        self.sent = 0

    async def send(self, message: Message) -> None:
        producer = await self._publisher.producer()
        try:
            # send() waits while the producer's buffer is full (the backpressure), at most the
            # request timeout.
            future = await producer.send(message.topic, message.value, key=message.key)
        except KafkaTimeoutError:
            await self._publisher.discard()
            raise KafkaUnavailableError("Kafka accepted no more messages in time") from None
        except (KafkaError, OSError) as error:
            raise KafkaUnavailableError(str(error) or type(error).__name__) from error
        self._pending.append(future)
        self.sent += 1
        if len(self._pending) >= self._max_in_flight:
            await self.wait()

    async def wait(self) -> None:
        pending, self._pending = self._pending, []
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*pending, return_exceptions=True), self._publisher.timeout_seconds
            )
        except TimeoutError:
            await self._publisher.discard()
            msg = f"no acknowledgement from Kafka within {self._publisher.timeout_seconds} s"
            raise KafkaUnavailableError(msg) from None
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            log.warning(
                "kafka did not acknowledge %d of %d messages: %s",
                len(failures),
                len(results),
                failures[0],
            )
            await self._publisher.discard()
            raise KafkaUnavailableError(str(failures[0]) or type(failures[0]).__name__)
