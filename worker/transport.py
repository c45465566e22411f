"""A small HTTP/1.1 keep-alive transport for the worker's own requests (claim, report...).

Why: at a few hundred claims and reports a second, httpx's default transport (httpcore over
anyio and h11) cost the worker about as much CPU as running the tasks. This one speaks plain
HTTP/1.1 over asyncio streams, on a handful of kept-alive connections: the request is written
in one call, the answer read by its ``Content-Length`` (or chunked). httpx stays the client
(URLs, headers, the ``httpx.Response`` the client parses, the exception types its retry rule
tells apart: ``ConnectError``/``ConnectTimeout`` never reached the server, anything later may
have), so nothing above it changes.

Only for ``http://`` servers reached without a proxy (``usable``); otherwise the worker keeps
httpx's own transport. A connection is put back only after a complete answer; one cancelled
or broken mid-request is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any
from urllib.parse import urlsplit

import httpx

PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
MAX_IDLE = 8  # kept-alive connections (the worker has a claim and two reports in flight)
MAX_HEAD = 64 * 1024


def usable(url: str) -> bool:
    """Whether this transport can serve ``url`` the way httpx would (plain http, no proxy)."""
    return (urlsplit(url).scheme == "http"
            and not any(os.environ.get(v) for v in PROXY_VARIABLES))


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def reusable(self) -> bool:
        # The server closes idle connections (keep-alive timeout): its FIN shows as EOF.
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Http1Transport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        url = request.url
        key = (url.host, url.port or 80)
        body = await request.aread()
        head = [f"{request.method} {url.raw_path.decode('ascii')} HTTP/1.1\r\n"]
        head += [f"{k.decode('latin-1')}: {v.decode('latin-1')}\r\n"
                 for k, v in request.headers.raw]
        if body and "content-length" not in request.headers:
            head.append(f"Content-Length: {len(body)}\r\n")
        data = ("".join(head) + "\r\n").encode("latin-1") + body
        conn = self._take(key)
        if conn is None:
            conn = await self._connect(key, timeouts.get("connect"))
        done = False
        try:
            try:
                conn.writer.write(data)
                async with asyncio.timeout(timeouts.get("read")):
                    status, headers, content, keep = await _read_response(
                        conn.reader, request.method)
            except TimeoutError as exc:
                raise httpx.ReadTimeout(f"no answer within {timeouts.get('read')} s",
                                        request=request) from exc
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError) as exc:
                raise httpx.RemoteProtocolError(
                    f"the server closed the connection or answered badly: {exc!r}",
                    request=request) from exc
            done = keep
        finally:
            if done and conn.reusable():
                self._put(key, conn)
            else:
                conn.close()
        return httpx.Response(status, headers=headers, content=content,
                              extensions={"http_version": b"HTTP/1.1"}, request=request)

    def _take(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.reusable():
                return conn
            conn.close()
        return None

    def _put(self, key: tuple[str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < MAX_IDLE:
            idle.append(conn)
        else:
            conn.close()

    async def _connect(self, key: tuple[str, int], seconds: float | None) -> _Connection:
        try:
            async with asyncio.timeout(seconds):
                reader, writer = await asyncio.open_connection(key[0], key[1],
                                                               limit=MAX_HEAD)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {key[0]}:{key[1]} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader, method: str
                         ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """(status, headers, body, keep-alive) of one HTTP/1.1 answer (1xx answers skipped)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        status = int(rest[:3])
        if status >= 200 or status == 101:
            break
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    close = version != b"HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError(f"bad header line {line[:100]!r}")
        value = value.strip()
        headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            length = int(value)
        elif lower == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lower == b"connection":
            close = b"close" in value.lower()
    if method == "HEAD" or status in (204, 304):
        body = b""
    elif chunked:
        body = await _read_chunked(reader)
        # The body is already whole: the transfer encoding must not be applied again.
        headers = [(n, v) for n, v in headers if n.lower() != b"transfer-encoding"]
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()  # until the server closes
        close = True
    return status, headers, body, not close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def make(url: str) -> Any:
    """The transport for the worker's client: this one when ``usable``, else None (httpx's)."""
    return Http1Transport() if usable(url) else None
