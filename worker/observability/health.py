"""Health, metrics and docs over HTTP on ``--health-port`` (0 turns it off).

    GET /livez     200 while the event loop answers
    GET /readyz    200 when the broker and every configured database answer; 503 with reasons
    GET /metrics   Prometheus text format
    GET /asyncapi  the AsyncAPI document as a page, with no "try it out" publishing

A few GET routes do not need a web framework: this is asyncio's stream server and HTTP/1.0.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

Check = Callable[[], Awaitable[dict[str, str]]]  # name -> problem, empty when all is well


class HealthServer:
    def __init__(self, port: int, readiness: Check, asyncapi_html: Callable[[], str]) -> None:
        self.port = port
        self.readiness = readiness
        self.asyncapi_html = asyncapi_html
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "0.0.0.0", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else "/"
            status, content_type, body = await self._route(parts[0] if parts else "", path)
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            writer.close()
            return
        head = (
            f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/livez":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            problems = await self.readiness()
            status = "503 Service Unavailable" if problems else "200 OK"
            body = json.dumps({"ready": not problems, "problems": problems}).encode()
            return status, "application/json", body
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        if path == "/asyncapi":
            return "200 OK", "text/html; charset=utf-8", self.asyncapi_html().encode()
        return "404 Not Found", "text/plain", b"not found\n"
