"""A stdlib HTTP server on a background thread: the local stack's fronts (API Gateway, ServiceNow, the
fault proxy), each handing every request to its own `serve`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from wfm_publish_local.lifecycle import Running

Serve = Callable[[BaseHTTPRequestHandler], None]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def handler_class(
    serve: Serve,
    log: logging.Logger,
    prefix: str,
    *,
    methods: Collection[str] = METHODS,
    any_method: bool = False,
    server_version: str | None = None,
    disable_nagle: bool = False,
) -> type[BaseHTTPRequestHandler]:
    """An HTTP/1.1 request handler that gives each request in `methods` (with `any_method`, every
    method) to `serve`; http.server answers 501 to the others. Its log lines go to `log` at debug,
    after `prefix`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = disable_nagle

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", prefix, format % args)

        def __getattr__(self, name: str) -> Any:
            # http.server looks up do_<METHOD> for each request.
            method = name.removeprefix("do_")
            if name.startswith("do_") and (method in methods or (any_method and method.isalpha())):
                return lambda: serve(self)
            raise AttributeError(name)

    if server_version is not None:
        Handler.server_version = server_version
    return Handler


class _Server(ThreadingHTTPServer):
    # The listen backlog: socketserver's default of 5 reset connections when twenty clients (a ServiceNow
    # burst, the functions' threads on the fault proxy) connected at once, faster than the accept loop.
    request_queue_size = 128
    daemon_threads = True


class LocalHttpServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str, port: int, name: str) -> None:
        self._server = _Server((host, port), handler)
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]!s}:{self.port}"

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=self._name,
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()


class HttpFront(Running):
    """A stand-in served over HTTP (API Gateway, ServiceNow, the fault proxy): its `url` is known once
    it is made; start and stop serve and end it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str, port: int, name: str) -> None:
        self._http = LocalHttpServer(handler, host, port, name)

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> Self:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()
