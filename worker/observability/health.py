"""Health, metrics and docs over HTTP on ``--health-host``:``--health-port`` (port 0: off).

    GET|HEAD /livez     200 while the event loop answers
    GET|HEAD /readyz    200 when the broker and every configured database answer; 503 with
                        the reasons (names and exception types, never a DSN)
    GET|HEAD /metrics   Prometheus text format
    GET|HEAD /asyncapi  the AsyncAPI document as a page, with no "try it out" publishing

The routes are FastStream's ASGI handlers (``faststream.asgi``: GET and HEAD, 405 with
``Allow`` otherwise), served by uvicorn — HTTP/1.1 with keep-alive, HEAD without a body — on a
socket bound here, so a busy port is a clear error rather than uvicorn's ``sys.exit``. The
worker's FastStream application keeps owning the broker's lifecycle and the signals: uvicorn
runs beside it without its lifespan and without its signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from faststream.asgi import AsgiResponse, HttpHandler, get
from faststream.asgi.factories import make_asyncapi_asgi
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from faststream.specification.base import SpecificationFactory
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from worker.errors import ConfigurationError

log = logging.getLogger("schemaheal.health")
Check = Callable[[], Awaitable[dict[str, str]]]  # name -> problem, empty when all is well
KEEP_ALIVE_S = 75  # longer than Prometheus' scrape interval, so scrapes reuse the connection


def health_app(readiness: Check, spec: SpecificationFactory | None) -> ASGIApp:
    """The ASGI application of the four routes; ``spec`` is the worker's AsyncAPI factory."""
    routes: dict[str, ASGIApp] = {
        "/livez": _livez,
        "/readyz": _readyz(readiness),
        "/metrics": _metrics,
        "/asyncapi": make_asyncapi_asgi(spec, include_in_schema=False, try_it_out_path=None)
        if spec is not None
        else _not_found,
    }

    for route in routes.values():
        if isinstance(route, HttpHandler):  # a failing route is logged, then answered 500
            route.set_logger(log)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # uvicorn runs without lifespan; websockets are refused
            await routes.get(scope["path"], _not_found)(scope, receive, send)

    return app


@get(include_in_schema=False)
async def _livez(scope: Scope) -> AsgiResponse:
    return AsgiResponse(b"ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"})


def _readyz(readiness: Check) -> ASGIApp:
    @get(include_in_schema=False)
    async def readyz(scope: Scope) -> AsgiResponse:
        problems = await readiness()
        body = json.dumps({"ready": not problems, "problems": problems}).encode()
        return AsgiResponse(body, 503 if problems else 200, {"Content-Type": "application/json"})

    return readyz


@get(include_in_schema=False)
async def _metrics(scope: Scope) -> AsgiResponse:
    return AsgiResponse(generate_latest(REGISTRY), 200, {"Content-Type": CONTENT_TYPE_LATEST})


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    response = AsgiResponse(b"not found\n", 404, {"Content-Type": "text/plain; charset=utf-8"})
    await response(scope, receive, send)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # SIGTERM/SIGINT belong to the worker's FastStream app, which stops us


class HealthServer:
    """uvicorn serving :func:`health_app` on ``host:port`` (port 0 picks a free one: tests)."""

    def __init__(self, app: ASGIApp, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._config = uvicorn.Config(
            app, lifespan="off", log_config=None, log_level=logging.WARNING, access_log=False,
            server_header=False, timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=5,
        )  # fmt: skip
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind, then serve in the background; ConfigurationError when the address is taken."""
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = _Server(self._config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        # uvicorn offers a flag, not an event; with the socket already bound this takes a tick
        while not self._server.started and not self._task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # the reason it stopped

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        raise ConfigurationError(
            f"health server: cannot listen on {host}:{port} ({exc.strerror}): choose another "
            "--health-host/--health-port (SCHEMAHEAL_HEALTH_HOST/_PORT), or 0 to turn it off"
        ) from None
