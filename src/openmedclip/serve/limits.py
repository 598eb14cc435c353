"""The service's limits: model work on a bounded thread pool (requests beyond it wait, then get 503), and an ASGI
middleware that refuses oversized bodies (413) and answers requests that take too long (504)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")

DRAIN_FACTOR = 4
"""How much of a refused body is read and dropped before the 413, as a multiple of the upload limit."""


class ServiceBusy(Exception):
    """Every worker stayed busy for as long as a request may wait for one."""


class WorkLimiter:
    """Runs blocking work (decoding, model passes) on ``max_concurrency`` threads, off the event loop.

    A request waits at most ``queue_wait_s`` for a free thread, else :class:`ServiceBusy`. A thread's slot is given
    back when its work really ends, so work whose request was abandoned (timed out) still counts until it finishes.
    """

    def __init__(self, max_concurrency: int, queue_wait_s: float):
        self.max_concurrency = max_concurrency
        self.queue_wait_s = queue_wait_s
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="openmedclip-work")
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on a worker thread, once one is free."""
        slots = self._semaphore()
        try:
            await asyncio.wait_for(slots.acquire(), self.queue_wait_s)
        except asyncio.TimeoutError:
            raise ServiceBusy(
                f"all {self.max_concurrency} workers stayed busy for {self.queue_wait_s:g} s; try again later"
            ) from None
        loop = asyncio.get_running_loop()
        try:
            future: Future[T] = self._executor.submit(work)
        except BaseException:
            slots.release()
            raise
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(slots.release))
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Stop the worker threads once their work is done."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _semaphore(self) -> asyncio.Semaphore:
        """The slots, made for the running loop (a server restarted on a new loop gets fresh ones)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop = asyncio.Semaphore(self.max_concurrency), loop
        return self._slots


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii")),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: a request body above ``max_body_bytes`` gets 413 (from its Content-Length before the app
    sees it, else as soon as the bytes received pass the limit), and a request still unanswered after ``timeout_s``
    gets 504.

    A refused body is read and dropped, up to :data:`DRAIN_FACTOR` times the limit, before the answer, so that the
    client (which sends the whole body before reading an answer) sees the 413 instead of a reset connection; a
    client that asked to wait (``Expect: 100-continue``) is answered at once and sends nothing.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, timeout_s: float):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    def _too_large(self) -> str:
        return f"request body is larger than the upload limit of {self.max_body_bytes / 1e6:g} MB"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, detail: str, received: int = 0) -> None:
        """Drop what may still come of the body (bounded in size and time), then answer 413."""
        if _header(scope, b"expect").lower() != b"100-continue":
            try:
                await asyncio.wait_for(self._drain(receive, received), self.timeout_s)
            except asyncio.TimeoutError:
                pass
        await _reply(send, 413, detail)

    async def _drain(self, receive: Receive, received: int) -> None:
        more = True
        while more and received <= DRAIN_FACTOR * self.max_body_bytes:
            message = await receive()
            received += len(message.get("body", b""))
            more = message["type"] == "http.request" and message.get("more_body", False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._refuse(scope, receive, send, f"{self._too_large()} (Content-Length: {declared} bytes)")
            return
        state: dict[str, Any] = {"received": 0, "started": False, "answered": False}

        async def limited_receive() -> Message:
            if state["answered"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    state["answered"] = True
                    await self._refuse(scope, receive, send, self._too_large(), state["received"])
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["answered"]:
                return  # this middleware has answered: what the app says after that is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, limited_receive, guarded_send), self.timeout_s)
        except asyncio.TimeoutError:
            if not (state["started"] or state["answered"]):
                state["answered"] = True
                await _reply(send, 504, f"the request took longer than the time limit of {self.timeout_s:g} s")
        except Exception:
            if not state["answered"]:
                raise


def _header(scope: Scope, name: bytes) -> bytes:
    return next((value for key, value in scope.get("headers", ()) if key == name), b"")


def _content_length(scope: Scope) -> int | None:
    try:
        return int(_header(scope, b"content-length"))
    except ValueError:
        return None
