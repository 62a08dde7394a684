"""Transport-neutral request and response values, the Genesys error body and the route table."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

JSON_TYPE = "application/json; charset=UTF-8"

T = TypeVar("T")

# Literal path segments under /telephony/providers/edges that must never be read as an edge id.
_EDGE_WORDS = (
    "trunks",
    "sites",
    "trunkbasesettings",
    "edgegroups",
    "phones",
    "phonebasesettings",
    "lines",
    "linebasesettings",
    "outboundroutes",
    "didpools",
    "dids",
    "extensions",
    "extensionpools",
    "certificateauthorities",
    "timezones",
    "availablelanguages",
    "metrics",
    "logicalinterfaces",
)
_PARAM_PATTERNS = {"edgeId": r"(?!(?:" + "|".join(_EDGE_WORDS) + r")(?:/|$))[^/]+"}


@dataclass
class SimResponse:
    """What the simulator answers.

    `delay_seconds` is latency the transport adds before answering; `drop` means close the socket.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_seconds: float = 0.0
    drop: bool = False

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class SimRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    base_url: str
    params: dict[str, str] = field(default_factory=dict)
    client_id: str = ""
    token: str = ""

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def args(self, name: str) -> list[str]:
        """Every value of a list parameter, repeated (`a=1&a=2`) or comma-separated (`a=1,2`)."""
        return [v for raw in self.query.get(name, []) for v in raw.split(",") if v]

    def expand(self) -> set[str]:
        return set(self.args("expand"))

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, "bad.request", f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "bad.request", "The request body must be a JSON object")
        return data


class ApiError(Exception):
    """A Genesys-style error answer, raised anywhere inside a handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        error_code: str | None = None,
        field_name: str | None = None,
        entity_id: str | None = None,
        entity_name: str | None = None,
        params: dict[str, str] | None = None,
        message_with_params: str | None = None,
        headers: dict[str, str] | None = None,
        limit: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error_code = error_code
        self.field_name = field_name
        self.entity_id = entity_id
        self.entity_name = entity_name
        self.params = params or {}
        self.message_with_params = message_with_params or message
        self.headers = headers or {}
        self.limit = limit

    def body(self, context_id: str) -> dict[str, Any]:
        details = []
        if self.error_code or self.field_name:
            details.append(
                {
                    "errorCode": self.error_code,
                    "fieldName": self.field_name,
                    "entityId": self.entity_id,
                    "entityName": self.entity_name,
                }
            )
        out: dict[str, Any] = {
            "message": self.message,
            "code": self.code,
            "status": self.status,
            "entityId": self.entity_id,
            "entityName": self.entity_name,
            "messageWithParams": self.message_with_params,
            "messageParams": self.params,
            "contextId": context_id,
            "details": details,
            "errors": [],
        }
        if self.limit is not None:
            out["limit"] = self.limit
        # Genesys leaves an empty field out (an unknown entity has no name to give).
        out["details"] = [{k: v for k, v in d.items() if v is not None} for d in details]
        return {k: v for k, v in out.items() if v is not None}


def not_found(what: str, entity_id: str) -> ApiError:
    return ApiError(
        404,
        "not.found",
        f"The requested {what} was not found: {entity_id}",
        entity_id=entity_id,
        message_with_params=f"The requested {what} was not found: {{id}}",
        params={"id": entity_id},
    )


def found(table: Mapping[str, T], entity_id: str, what: str) -> T:
    """The entity a request names, or Genesys' 404 for it."""
    entity = table.get(entity_id)
    if entity is None:
        raise not_found(what, entity_id)
    return entity


class Named(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...


def named(entity: Named) -> dict[str, Any]:
    """An entity's id and name as Genesys writes them (a reference, or the head of the entity);
    a scenario that gives no name gets its id."""
    return {"id": entity.id, "name": entity.name or entity.id}


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse(
        status,
        {"Content-Type": JSON_TYPE, **(headers or {})},
        json.dumps(payload, separators=(",", ":")).encode(),
    )


Handler = Callable[[SimRequest], SimResponse]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    auth: bool = True  # needs a bearer token (and counts against the token's rate limit)
    pattern: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(
            r"\{(\w+)\}",
            lambda m: f"(?P<{m.group(1)}>{_PARAM_PATTERNS.get(m.group(1), '[^/]+')})",
            self.template,
        )
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"


class Router:
    """First matching template wins; a known path with another method is told apart for a 405."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, path known for another method)."""
        known = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method == method:
                return route, m.groupdict(), True
            known = True
        return None, {}, known


def page(
    req: SimRequest, entities: list[dict[str, Any]], max_size: int = 500, *, totals: bool = True
) -> dict[str, Any]:
    """The Genesys paged envelope (pageSize default 25, pageNumber from 1). `totals=False`: the
    listings that page by links only (QueueMemberEntityListing: no total, pageCount or lastUri)."""
    size = _int_arg(req, "pageSize", 25, 1, max_size)
    number = _int_arg(req, "pageNumber", 1, 1, 1_000_000)
    total = len(entities)
    count = max(1, -(-total // size))
    # Paging links keep the caller's filters, as Genesys' nextUri does.
    filters = [(k, v) for k, vs in req.query.items() if k not in {"pageSize", "pageNumber"} for v in vs]
    kept = urlencode(filters)
    base = f"{req.path}?{kept + '&' if kept else ''}pageSize={size}&pageNumber="
    out: dict[str, Any] = {
        "entities": entities[(number - 1) * size : number * size],
        "pageSize": size,
        "pageNumber": number,
        "firstUri": f"{base}1",
        "selfUri": f"{base}{number}",
    }
    if totals:
        out.update({"total": total, "pageCount": count, "lastUri": f"{base}{count}"})
    if number < count:
        out["nextUri"] = f"{base}{number + 1}"
    if number > 1:
        out["previousUri"] = f"{base}{number - 1}"
    return out


def _int_arg(req: SimRequest, name: str, default: int, low: int, high: int) -> int:
    raw = req.arg(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(
            400,
            "bad.request",
            f"{name} must be an integer from {low} to {high}, got {raw!r}",
            error_code="invalid.value",
            field_name=name,
        )
    return value
