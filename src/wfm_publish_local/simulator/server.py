"""The simulator over real HTTP on 127.0.0.1 (stdlib ThreadingHTTPServer, one thread per request)."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from wfm_publish_local.lifecycle import Running
from wfm_publish_local.simulator.loading import load_scenario
from wfm_publish_local.simulator.model import GenesysSimulator

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so a dropped connection never poisons a kept-alive socket.
    protocol_version = "HTTP/1.0"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        headers = {k: v for k, v in self.headers.items()}
        resp = self.server.simulator.handle(self.command, parts.path, query, headers, body)
        if resp.delay_seconds > 0:
            time.sleep(resp.delay_seconds)  # injected latency: the only sleep, and only on the wire
        if resp.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: GenesysSimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A caller that gave up (its read timeout, during injected latency) is not the server's error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("the caller %s went away before the answer", client_address)
            return
        super().handle_error(request, client_address)


class SimulatorServer(Running):
    """Serves a GenesysSimulator; `url` is known once started (port 0 picks a free port)."""

    def __init__(self, simulator: GenesysSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator server is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> Self:
        if self._server is None:
            self._server = _Server((self.host, self.port), self.simulator)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def serve_forever(scenario_path: str, port: int) -> None:
    """The `wfm-publish simulate` command: serve a scenario until interrupted."""
    simulator = GenesysSimulator(load_scenario(scenario_path))
    server = SimulatorServer(simulator, port=port).start()
    sys.stderr.write(f"Genesys Cloud simulator: {scenario_path} at {server.url} (Ctrl-C stops)\n")
    sys.stderr.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
