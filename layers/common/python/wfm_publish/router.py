"""The publish API's routing for API Gateway REST proxy events, without Powertools' event_handler.

Importing `aws_lambda_powertools.event_handler` costs the publish trigger ~30-50 ms of its cold start (the
package imports its AppSync resolvers and asyncio, the event data classes and the OpenAPI machinery).
This router does what `APIGatewayRestResolver(enable_validation=True)` did for our routes, answer for
answer: the same matching (a path parameter is one segment of its characters, trailing slashes are
ignored, static routes first), the same checks of path parameters, headers and the body with the same
pydantic constraints (so the same error messages, in the same order), answers validated against their
model and serialized the same way, exceptions to the handlers registered for their class.

Routes are declared as they were for Powertools, with this module's `Path`, `Header` and `Body` markers
and `Answer[Model]` for an answer with its own status and headers. `Router.resolver()` builds the same
routes on Powertools' validating resolver: the OpenAPI document is generated from it (`make openapi`),
and tests/unit/test_api_router.py holds the two to the same answer for every request of a corpus.
"""

from __future__ import annotations

import base64
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar
from urllib.parse import parse_qs

from aws_lambda_powertools import Logger
from pydantic import Field, TypeAdapter, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

logger = Logger(child=True)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# As Powertools matches a path parameter: one segment of these characters.
_SAFE_URI = "-._~()'!*:@,;=+&$"
_UNSAFE_URI = r"%<> \[\]{}|^"
_DYNAMIC = re.compile(r"(<\w+>)")
_SEGMENT = rf"(?P\1[{_SAFE_URI}{_UNSAFE_URI}\\w]+)"  # a re.sub template, as Powertools'

M = TypeVar("M")  # a model, or a union of one with `str` for a route that may answer text (SVG)
F = TypeVar("F", bound=Callable[..., Any])
REQUIRED: Any = inspect.Parameter.empty


# --- what a route declares ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """A path parameter's constraints and description (Powertools' `Path`)."""

    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Header:
    """A header's name, constraints and description (Powertools' `Header`)."""

    alias: str
    min_length: int | None = None
    max_length: int | None = None
    description: str | None = None


@dataclass(frozen=True)
class Query:
    """A query parameter: its name when not the argument's, its description (Powertools' `Query`)."""

    alias: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Body:
    """The JSON body, validated as a whole against the parameter's model (Powertools' `Body`)."""


@dataclass
class Answer(Generic[M]):
    """A route's answer with its own status and headers (Powertools' `Response[M]`). A body that
    validates as `str` (a route declared `Answer[Model | str]`) is sent as it is, with the Content-Type
    the headers give."""

    status: int
    body: M
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """What an exception handler answers: a status, the body's text, its headers."""

    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)


class _Invalid(Exception):
    def __init__(self, errors: Sequence[Any]) -> None:
        super().__init__(errors)
        self._errors = list(errors)

    def errors(self) -> list[Any]:
        """Each error as pydantic reports it, its `loc` starting with where it was ("path", "header",
        "body"; "response")."""
        return self._errors


class RequestValidationError(_Invalid):
    """The request broke a route's parameters or body."""


class ResponseValidationError(_Invalid):
    """A route's answer broke its own model (a bug)."""


class UnsupportedContentType(Exception):
    """A body whose Content-Type is neither JSON nor a form: Powertools answers 415 itself."""


class NotFound(Exception):
    """No route takes this method and path (Powertools' `NotFoundError`)."""


@dataclass
class _Param:
    name: str
    where: str  # "path" | "query" | "header" | "body"
    alias: str
    marker: Path | Query | Header | Body
    annotation: Any
    default: Any = REQUIRED  # a parameter with a default may be absent

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        """Built at the route's first request, not at import: a cold start builds only its own route's."""
        if isinstance(self.marker, Body):
            return TypeAdapter(self.annotation)
        constraints = Field(
            min_length=getattr(self.marker, "min_length", None),
            max_length=getattr(self.marker, "max_length", None),
            pattern=getattr(self.marker, "pattern", None),
        )
        constrained: Any = Annotated[self.annotation, constraints]
        return TypeAdapter(constrained)


@dataclass
class _Route:
    method: str
    rule: str
    regex: re.Pattern[str]
    func: Callable[..., Any]
    params: list[_Param]
    answer: Any  # the model (or `Model | str`) the answer validates against
    openapi: dict[str, Any]

    @property
    def dynamic(self) -> bool:
        return _DYNAMIC.search(self.rule) is not None

    @cached_property
    def answer_adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.answer)


class Router:
    """Routes declared with `get`/`post`, exception handlers with `exception_handler`/`not_found` (as on
    Powertools' resolver); `resolve(event)` answers an API Gateway REST proxy event."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._handlers: dict[type[Exception], Callable[[Any], Reply]] = {}

    # --- declaring ---------------------------------------------------------------------------------

    def get(self, rule: str, **openapi: Any) -> Callable[[F], F]:
        return self.route(rule, "GET", **openapi)

    def post(self, rule: str, **openapi: Any) -> Callable[[F], F]:
        return self.route(rule, "POST", **openapi)

    def route(self, rule: str, method: str, **openapi: Any) -> Callable[[F], F]:
        """`openapi`: operation_id, summary, responses... (the document's, through `resolver()`)."""

        def register(func: F) -> F:
            rule_ = rule.rstrip("/")  # as Powertools' REST resolver
            regex = re.compile(f"^{_DYNAMIC.sub(_SEGMENT, rule_)}/*$")
            hints = typing.get_type_hints(func, include_extras=True)
            answer = hints.pop("return")
            defaults = inspect.signature(func).parameters
            params = [_param(name, hint, defaults[name].default) for name, hint in hints.items()]
            model = typing.get_args(answer)[0] if typing.get_origin(answer) is Answer else answer
            self._routes.append(_Route(method.upper(), rule_, regex, func, params, model, openapi))
            return func

        return register

    def exception_handler(self, kind: type[Exception]) -> Callable[[Callable[[Any], Reply]], Any]:
        def register(handler: Callable[[Any], Reply]) -> Callable[[Any], Reply]:
            self._handlers[kind] = handler
            return handler

        return register

    def not_found(self, handler: Callable[[Any], Reply]) -> None:
        self._handlers[NotFound] = handler

    # --- answering -------------------------------------------------------------------------------------

    def resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        """The Lambda proxy answer to an API Gateway REST (payload 1.0) event."""
        method, path = str(event["httpMethod"]).upper(), str(event["path"])
        ordered = [r for r in self._routes if not r.dynamic] + [r for r in self._routes if r.dynamic]
        for route in ordered:
            match = route.regex.match(path) if route.method == method else None
            if match:
                return self._call(route, event, match.groupdict())
        return self._answer_exception(NotFound())

    def _call(self, route: _Route, event: dict[str, Any], path_args: dict[str, str]) -> dict[str, Any]:
        try:
            result = route.func(**_arguments(route, event, path_args))
            answer = result if isinstance(result, Answer) else Answer(HTTPStatus.OK.value, result)
            adapter = route.answer_adapter
            try:
                valid = adapter.validate_python(answer.body, from_attributes=True)
            except ValidationError as invalid:
                raise ResponseValidationError(_located(invalid, ("response",))) from None
            dumped = adapter.dump_python(valid, mode="json", by_alias=True)
            # Text (an SVG) goes as it is; anything else as compact JSON, as Powertools serializes.
            body = dumped if isinstance(dumped, str) else json.dumps(dumped, separators=(",", ":"))
            return _proxy(answer.status, body, answer.headers)
        except Exception as error:
            return self._answer_exception(error)

    def _answer_exception(self, error: Exception) -> dict[str, Any]:
        handler = next((self._handlers[k] for k in type(error).__mro__ if k in self._handlers), None)
        if handler is not None:
            reply = handler(error)
            return _proxy(reply.status, reply.body, reply.headers)
        if isinstance(error, UnsupportedContentType):
            # Powertools' own answer (no handler of ours takes it), kept as it was.
            detail = [{"loc": ["body"], "type": "unsupported_content_type"}]
            status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            return _proxy(status, json.dumps({"statusCode": status, "detail": detail}, separators=(",", ":")))
        logger.exception("unhandled error answering the request")
        raise error

    # --- the same routes on Powertools' validating resolver --------------------------------------------

    def resolver(self) -> APIGatewayRestResolver:
        """These routes, handlers and answers on `APIGatewayRestResolver(enable_validation=True)`: the
        source of the OpenAPI document, and the reference this router is tested against."""
        from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
        from aws_lambda_powertools.event_handler.exceptions import NotFoundError
        from aws_lambda_powertools.event_handler.openapi import exceptions as pt
        from aws_lambda_powertools.event_handler.openapi import params

        app = APIGatewayRestResolver(enable_validation=True, response_validation_error_http_code=500)

        def response(reply: Reply) -> Response[str]:
            return Response(reply.status, JSON, reply.body, headers=dict(reply.headers))

        def handle(ours: type[Exception], make: Callable[[Any], Exception]) -> Callable[[Any], Response[str]]:
            return lambda exc: response(self._handlers[ours](make(exc)))

        for kind in self._handlers:
            if kind is NotFound:
                app.exception_handler(NotFoundError)(handle(NotFound, lambda _: NotFound()))
            elif kind is RequestValidationError:
                app.exception_handler(pt.RequestValidationError)(
                    handle(kind, lambda exc: RequestValidationError(exc.errors()))
                )
            elif kind is ResponseValidationError:
                app.exception_handler(pt.ResponseValidationError)(
                    handle(kind, lambda exc: ResponseValidationError(exc.errors()))
                )
            else:
                app.exception_handler(kind)(handle(kind, lambda exc: exc))

        def powertools(marker: Path | Query | Header | Body) -> Any:
            kwargs = {k: v for k, v in asdict(marker).items() if v is not None}
            kind = {Path: params.Path, Query: params.Query, Header: params.Header, Body: params.Body}
            return kind[type(marker)](**kwargs)

        for route in self._routes:
            declared = [
                inspect.Parameter(
                    p.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=p.default,
                    annotation=Annotated[p.annotation, powertools(p.marker)],
                )
                for p in route.params
            ]
            hints = typing.get_type_hints(route.func, include_extras=True)
            returns = (
                Response[route.answer]  # type: ignore[name-defined]
                if typing.get_origin(hints["return"]) is Answer
                else route.answer
            )

            def call(*, _func: Callable[..., Any] = route.func, **values: Any) -> Any:
                result = _func(**values)
                if isinstance(result, Answer):
                    return Response(result.status, JSON, result.body, headers=result.headers)
                return result

            call.__signature__ = inspect.Signature(declared, return_annotation=returns)  # type: ignore[attr-defined]
            call.__name__ = route.func.__name__
            app.route(route.rule, route.method, **route.openapi)(call)
        return app


def _param(name: str, hint: Any, default: Any = REQUIRED) -> _Param:
    if typing.get_origin(hint) is not Annotated:
        raise TypeError(f"route parameter {name!r} needs Annotated[type, Path|Query|Header|Body]")
    annotation, *extras = typing.get_args(hint)
    marker = next(e for e in extras if isinstance(e, Path | Query | Header | Body))
    if isinstance(marker, Body):
        return _Param(name, "body", name, marker, annotation)
    if isinstance(marker, Header):  # lower-cased, as Powertools
        return _Param(name, "header", marker.alias.lower(), marker, annotation, default)
    if isinstance(marker, Query):
        return _Param(name, "query", marker.alias or name, marker, annotation, default)
    return _Param(name, "path", name, marker, annotation)


def _arguments(route: _Route, event: dict[str, Any], path_args: dict[str, str]) -> dict[str, Any]:
    """The route's arguments, validated in Powertools' order: path, query, headers, then the body (whose
    unreadable JSON or unknown content type ends the checks at once)."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for param in route.params:
        if param.where == "path":
            _validate(param, path_args.get(param.alias), ("path", param.alias), values, errors)
    for where, (given, multi) in (("query", _query(event)), ("header", _headers(event))):
        for param in route.params:
            if param.where == where:
                value = _scalar((given or {}).get(param.alias), param.alias in multi)
                _validate(param, value, (where, param.alias), values, errors)
    for param in route.params:
        if param.where == "body":
            body = _body(event)
            if isinstance(body, list) and body:
                body = body[0]
            _validate(param, body, ("body",), values, errors)
    if errors:
        raise RequestValidationError(errors)
    return values


def _scalar(value: Any, multi: bool) -> Any:
    """A parameter's value as Powertools hands it to validation: one value alone; a single value split
    on commas joined again; several values given as such, a list."""
    if isinstance(value, list):
        if len(value) > 1 and not multi and all(isinstance(v, str) for v in value):
            return ",".join(value)
        if len(value) == 1:
            return value[0]
    return value


def _validate(
    param: _Param, value: Any, loc: tuple[str, ...], values: dict[str, Any], errors: list[Any]
) -> None:
    if value is None:
        if param.default is not REQUIRED:
            values[param.name] = param.default
            return
        errors.append({"type": "missing", "loc": loc, "msg": "Field required", "input": None})
        return
    try:
        values[param.name] = param.adapter.validate_python(value, from_attributes=True)
    except ValidationError as invalid:
        errors.extend(_located(invalid, loc))


def _located(invalid: ValidationError, loc: tuple[str, ...]) -> list[Any]:
    return [{**error, "loc": loc + tuple(error.get("loc", ()))} for error in invalid.errors()]


def _query(event: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The query by name, as Powertools resolves a REST event's: the single values split on commas, the
    multi-value ones over them; and the names that came as multi-value parameters."""
    single = {str(k): str(v).split(",") for k, v in (event.get("queryStringParameters") or {}).items()}
    multi = {str(k): v for k, v in (event.get("multiValueQueryStringParameters") or {}).items()}
    return {**single, **multi}, set(multi)


def _headers(event: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Headers by lower-cased name (a later spelling wins): the multi-value ones when the event has
    any, else the single ones; and the names that came as multi-value headers."""
    multi = {str(k).lower(): v for k, v in (event.get("multiValueHeaders") or {}).items()}
    single = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    return (multi or single), set(multi)


def _body(event: dict[str, Any]) -> Any:
    """The body as Powertools read it: by the Content-Type as sent (so "Application/JSON" is not JSON
    here), JSON or a form. The guard (api.guard) lets only JSON media types and JSON text this far, and
    never multipart, which Powertools would also have read."""
    single = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = str(single.get("content-type", "")).strip()
    if not content_type or content_type.startswith(JSON):
        text = _decoded(event)
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as bad:
            error = {"type": "json_invalid", "loc": ("body", bad.pos), "msg": "JSON decode error"}
            raise RequestValidationError([{**error, "input": {}, "ctx": {"error": bad.msg}}]) from None
    if content_type.startswith(FORM):
        return parse_qs(_decoded(event) or "", keep_blank_values=True)
    raise UnsupportedContentType(content_type)


def _decoded(event: dict[str, Any]) -> str | None:
    text: str | None = event.get("body")
    if event.get("isBase64Encoded") and text:
        return base64.b64decode(text.encode()).decode()
    return text


def _proxy(status: int, body: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """As Powertools answers a REST API: multi-value headers, Content-Type after the route's own."""
    sent = {**(headers or {})}
    sent.setdefault("Content-Type", JSON)
    return {
        "statusCode": status,
        "body": body,
        "isBase64Encoded": False,
        "multiValueHeaders": {name: [value] for name, value in sent.items()},
    }
