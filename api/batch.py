"""NDJSON batch screening: patients in line by line, results out line by line, memory flat.

Why the pieces:
- `ndjson_lines` splits the request body as it streams in and never holds more than one line
  (at most `max_body_bytes`, else that line is reported as too large and skipped);
- a producer task screens each line in the thread pool and puts the encoded result in a
  `ByteQueue`, which bounds how far screening may run ahead of the client's reading;
- `NdjsonStream` sends the queue's lines. Unlike Starlette's StreamingResponse, it does not
  listen for a disconnect with `receive()`, because the producer is still reading the body
  with `receive()` while results go out.

Clients that read while they send (curl, aiohttp, Go) get results as each line is screened and
can send any number of patients. Clients that send the whole body before reading (httpx,
requests, fetch) work while their body fits the sockets' buffers (a few MB on loopback); past
that, both sides wait for the other until the client times out, as HTTP/1.1 flow control
dictates. Keeping all results in memory or on disk instead would break "memory flat" and
"never stored", so such clients are told (api/README.md) to send a few MB per request.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .problems import BodyTooLarge, log_exception, problem_body

MEDIA_TYPE = "application/x-ndjson"


class LineTooLong:
    """Marks an NDJSON line that was over the limit and has been skipped."""

    def __init__(self, limit: int):
        self.limit = limit


async def ndjson_lines(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[tuple[int, bytes | LineTooLong]]:
    """(line number, line) as lines complete; an over-long line becomes `LineTooLong` and is skipped."""
    buf = bytearray()
    number = 0
    skipping = False
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            number += 1
            if skipping:
                skipping = False
            elif len(buf) + end - start > limit:
                yield number, LineTooLong(limit)
            else:
                buf += chunk[start:end]
                yield number, bytes(buf)
            buf.clear()
            start = end + 1
        if not skipping:
            buf += chunk[start:]
            if len(buf) > limit:
                buf.clear()
                skipping = True
                yield number + 1, LineTooLong(limit)
    if buf.strip() and not skipping:
        yield number + 1, bytes(buf)


class ByteQueue:
    """An asyncio queue bounded by the bytes it holds (one item always fits)."""

    def __init__(self, budget: int):
        self.budget, self.used = budget, 0
        self.items: deque[bytes | None] = deque()
        self.changed = asyncio.Condition()

    async def put(self, item: bytes | None) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.used < self.budget or not self.items)
            self.items.append(item)
            self.used += len(item or b"")
            self.changed.notify_all()

    async def get(self) -> bytes | None:
        async with self.changed:
            await self.changed.wait_for(lambda: bool(self.items))
            item = self.items.popleft()
            self.used -= len(item or b"")
            self.changed.notify_all()
            return item


def error_line(number: int, status: int, slug: str, detail: str, instance: str, errors=None) -> bytes:
    body = {"line": number, "error": problem_body(status, slug, detail, instance, errors)}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


async def produce(chunks: AsyncIterator[bytes], limit: int, queue: ByteQueue, instance: str,
                  screen_line: Callable[[int, bytes], bytes], fatal: list) -> None:
    """Screen each line as it arrives; always ends the queue, with an error line if the body fails.

    A failure of the whole body (too large, a bug) is also appended to `fatal`, so that the
    route can still answer with a plain problem if nothing has been sent yet.
    """
    try:
        async for number, line in ndjson_lines(chunks, limit):
            if isinstance(line, LineTooLong):
                await queue.put(error_line(number, 413, "body-too-large",
                                           f"Line {number} is over {line.limit} bytes; skipped.", instance))
            elif line.strip():
                await queue.put(await run_in_threadpool(screen_line, number, line))
    except BodyTooLarge as exc:
        fatal.append((413, "body-too-large", str(exc.detail)))
        await queue.put(error_line(0, 413, "body-too-large", f"{exc.detail} Screening stopped.", instance))
    except ClientDisconnect:
        pass
    except Exception as exc:  # noqa: BLE001 — a bug must end the stream visibly, not hang it
        log_exception(exc, instance)
        fatal.append((500, "internal", "The service failed."))
        await queue.put(error_line(0, 500, "internal", "The service failed; screening stopped.", instance))
    await queue.put(None)


class NdjsonStream(Response):
    """Sends queued lines; cancels the producer if the client goes away."""

    media_type = MEDIA_TYPE

    def __init__(self, first: bytes | None, queue: ByteQueue, producer: asyncio.Task):
        super().__init__(content=b"", media_type=MEDIA_TYPE)
        del self.headers["content-length"]
        self.first, self.queue, self.producer = first, queue, producer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            item = self.first
            while item is not None:
                await send({"type": "http.response.body", "body": item, "more_body": True})
                item = await self.queue.get()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if not self.producer.done():
                self.producer.cancel()
