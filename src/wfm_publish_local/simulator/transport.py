"""Route `requests` straight into the simulator, no sockets: the real client runs in virtual time."""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPResponse

from wfm_publish_local.simulator.model import GenesysSimulator


class InProcessAdapter(BaseAdapter):
    """Mount on a Session for the simulator's base URL: `session.mount("http://sim.local", adapter)`.

    Injected latency advances a virtual clock (anything with `advance(seconds)`) or sleeps on a real
    one; latency over the request's read timeout raises ReadTimeout. A dropped connection raises
    ConnectionError, as a closed socket does over HTTP.
    """

    def __init__(self, simulator: GenesysSimulator) -> None:
        super().__init__()
        self.simulator = simulator

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        parts = urlsplit(request.url or "")
        headers = {"Host": parts.netloc, **dict(request.headers)}
        body = request.body
        raw = body.encode() if isinstance(body, str) else (body or b"")
        if not isinstance(raw, bytes):
            raw = b"".join(raw)  # an iterable body (generator upload)
        query = parse_qs(parts.query, keep_blank_values=True)
        resp = self.simulator.handle(request.method or "GET", parts.path or "/", query, headers, raw)
        if resp.delay_seconds > 0:
            read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
            if read_timeout is not None and resp.delay_seconds > read_timeout:
                self._wait(read_timeout)
                raise requests.exceptions.ReadTimeout(
                    f"simulated latency {resp.delay_seconds}s", request=request
                )
            self._wait(resp.delay_seconds)
        if resp.drop:
            raise requests.exceptions.ConnectionError("simulated dropped connection", request=request)
        return response_for(request, resp.status, resp.headers, resp.body)

    def _wait(self, seconds: float) -> None:
        advance = getattr(self.simulator.clock, "advance", None)
        if callable(advance):
            advance(seconds)
        else:
            time.sleep(seconds)

    def close(self) -> None:
        return None


def response_for(
    request: requests.PreparedRequest, status: int, headers: dict[str, str], body: bytes
) -> requests.Response:
    """A complete `requests` answer to `request`, as if read off the wire."""
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(headers)
    response.raw = HTTPResponse(body=io.BytesIO(body), headers=headers, status=status, preload_content=False)
    response._content = body  # already complete: no streaming from a simulator
    response.encoding = "utf-8"
    response.url = request.url or ""
    response.request = request
    response.reason = "OK" if status < 400 else "Error"
    return response
