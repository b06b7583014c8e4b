"""An asyncio MLLP server: many connections, many messages each, acknowledged in order.

Each connection reads frames and handles its messages one after the other, so a sender's messages are
stored and processed in the order sent. Landing and processing run in a bounded pool of worker threads,
each with its own database connection. Stopping stops accepting, lets every message in flight finish
and be acknowledged, then closes the connections and the pool.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import connections

from patients.ingest.hl7v2.ack import acknowledgement, message_header
from patients.mllp.framing import Abandoned, FrameDecoder, Junk, Message, Oversized, frame
from patients.mllp.handling import REJECT, Answer, message_acknowledge
from patients.models import Source

logger = logging.getLogger(__name__)

READ_BYTES = 64 * 1024
STOP_GRACE_SECONDS = 60.0


class WorkerPool:
    """Threads that run database work; each closes its database connections when the pool stops."""

    def __init__(self, *, size: int) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._run, name=f"mllp-worker-{number}", daemon=True)
            for number in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], Any]) -> "concurrent.futures.Future[Any]":
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((job, future))
        return future

    def _run(self) -> None:
        try:
            while (item := self._jobs.get()) is not None:
                job, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(job())
                except BaseException as error:
                    future.set_exception(error)
        finally:
            connections.close_all()

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()


class MllpListener:
    def __init__(
        self,
        *,
        source: Source,
        host: str = "127.0.0.1",
        port: int = 2575,
        processing_id: str = "P",
        max_message_bytes: int = 10 * 1024 * 1024,
        read_timeout_seconds: float = 300.0,
        workers: int = 4,
    ) -> None:
        self.source = source
        self.host = host
        self.port = port
        self.processing_id = processing_id
        self.max_message_bytes = max_message_bytes
        self.read_timeout_seconds = read_timeout_seconds
        self.workers = workers
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._pool: WorkerPool | None = None
        # Connection tasks, and whether each is handling a message (then it is left to finish).
        self._connections: dict[asyncio.Task[None], bool] = {}
        self._stopping = False
        self._stopped = asyncio.Event()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the listener is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> tuple[str, int]:
        self._pool = WorkerPool(size=self.workers)
        self._server = await asyncio.start_server(self._connection, host=self.host, port=self.port)
        logger.info("MLLP listener on %s:%s for source %s", *self.address, self.source.slug)
        return self.address

    async def serve_until_stopped(self) -> None:
        await self._stopped.wait()

    def counts_line(self) -> str:
        counts = self.counts
        return (
            f"{len(self._connections)} connections open, {counts['connections']} accepted in all; "
            f"{counts['messages']} messages: {counts['AA']} AA, {counts['AE']} AE, {counts['AR']} AR, "
            f"{counts['duplicates']} duplicates; {counts['oversized']} oversized, "
            f"{counts['truncated']} truncated, {counts['junk_bytes']} junk bytes discarded"
        )

    async def stop(self) -> None:
        """Stop accepting, let messages in flight be acknowledged, close every connection and the pool."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task, busy in list(self._connections.items()):
            if not busy:
                task.cancel()  # waiting for bytes: nothing of it is in flight
        if self._connections:
            _, late = await asyncio.wait(list(self._connections), timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
        if self._pool is not None:
            await asyncio.to_thread(self._pool.stop)
        logger.info("MLLP listener stopped: %s", self.counts_line())
        self._stopped.set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - a stream callback always runs in a task
        if self._stopping:
            writer.close()
            return
        self._connections[task] = False
        self.counts["connections"] += 1
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        decoder = FrameDecoder(max_message_bytes=self.max_message_bytes)
        try:
            await self._conversation(task, reader=reader, writer=writer, decoder=decoder, peer=peer)
        except asyncio.CancelledError:
            pass  # stopping while this connection waited for bytes
        except (ConnectionError, OSError) as error:
            logger.info("MLLP connection from %s failed (%s)", peer, type(error).__name__)
        finally:
            if decoder.pending_bytes:
                self.counts["truncated"] += 1
                logger.warning(
                    "MLLP connection from %s ended inside a message: %s bytes dropped unanswered",
                    peer,
                    decoder.pending_bytes,
                )
            del self._connections[task]
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _conversation(
        self,
        task: "asyncio.Task[None]",
        *,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        decoder: FrameDecoder,
        peer: str,
    ) -> None:
        while not self._stopping:
            try:
                data = await asyncio.wait_for(reader.read(READ_BYTES), timeout=self.read_timeout_seconds)
            except TimeoutError:
                logger.info(
                    "MLLP connection from %s idle for %ss: closing it", peer, self.read_timeout_seconds
                )
                return
            if not data:
                return
            self._connections[task] = True
            try:
                for event in decoder.feed(data):
                    await self._event(event, writer=writer, peer=peer)
                    if self._stopping:
                        return
            finally:
                self._connections[task] = False

    async def _event(self, event: object, *, writer: asyncio.StreamWriter, peer: str) -> None:
        match event:
            case Message(body=body):
                answer = await self._answer(body, peer=peer)
                self.counts["messages"] += 1
                self.counts[answer.code] += 1
                self.counts["duplicates"] += answer.duplicate
                writer.write(frame(answer.acknowledgement))
                await writer.drain()
            case Oversized(size=size, head=head):
                self.counts["messages"] += 1
                self.counts["oversized"] += 1
                self.counts[REJECT] += 1
                logger.warning(
                    "MLLP message from %s refused: over %s bytes (%s so far)",
                    peer,
                    self.max_message_bytes,
                    size,
                )
                text = f"the message is over the limit of {self.max_message_bytes:,} bytes; it was not stored"
                writer.write(frame(acknowledgement(message_header(head), code=REJECT, text=text)))
                await writer.drain()
            case Junk(size=size):
                self.counts["junk_bytes"] += size
                logger.info("MLLP connection from %s: %s bytes outside any frame discarded", peer, size)
            case Abandoned(size=size):
                self.counts["truncated"] += 1
                logger.warning(
                    "MLLP connection from %s restarted a frame: %s bytes dropped unanswered", peer, size
                )

    async def _answer(self, body: bytes, *, peer: str) -> Answer:
        assert self._pool is not None  # noqa: S101 - started before any connection is accepted
        origin = f"mllp://{peer}"

        def job() -> Answer:
            return message_acknowledge(
                source=self.source, body=body, origin=origin, processing_id=self.processing_id
            )

        try:
            return await asyncio.wrap_future(self._pool.submit(job))
        except Exception as error:
            # Landing and processing failures are answered inside the job; this is a defect around them.
            logger.error("MLLP message from %s could not be answered (%s)", peer, type(error).__name__)
            text = "internal error; send the message again later"
            return Answer(code=REJECT, acknowledgement=acknowledgement(None, code=REJECT, text=text))
