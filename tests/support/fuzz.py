"""Hypothesis strategies for requests to the publish API of every shape: what tests/e2e/test_api_fuzz.py
sends over HTTP and tests/unit/test_api_body.py hands the handler. Bodies of random JSON, near-requests,
nesting thousands deep, numbers thousands of digits long, NaN, odd unicode and lone surrogates, keys
named twice, any bytes, byte order marks, in UTF-8/16/32 or Latin-1; content types in any case with any
parameters; idempotency keys odd, empty, doubled or standing in as X-Request-Id; HTTP framing exact,
absent, chunked or a Content-Length that is no number."""

from __future__ import annotations

import codecs
import json
import time
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from wfm_publish_local.demo import SERVICENOW_BODY

# --- bodies -------------------------------------------------------------------------------------------

ODD_TEXT = st.text(
    st.characters(codec=None, exclude_categories=()),  # every code point, surrogates and controls too
    max_size=20,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=12,
)
FIELDS = [*SERVICENOW_BODY, "businessUnitId", "weekId", "callback", "deadlineSeconds", "dryRun", "extra"]


@st.composite
def near_requests(draw: st.DrawFn) -> Any:
    """The ServiceNow body with some fields replaced by anything, some removed, some added."""
    body: dict[str, Any] = dict(SERVICENOW_BODY)
    body["publishTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    body["scheduleId"] = draw(st.sampled_from(["sched-demo", "sched-fuzz"]) | st.uuids().map(str))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        body[field] = draw(JSON_VALUES)
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=2)):
        body.pop(field, None)
    return body


def _json_text(value: Any, draw: st.DrawFn) -> str:
    """`value` as JSON text; lone surrogates written as escapes (as any JSON encoder would)."""
    return (
        json.dumps(value, ensure_ascii=draw(st.booleans()), allow_nan=False)
        .encode("utf-8", "surrogatepass")
        .decode("utf-8", "replace")
        if draw(st.booleans())
        else json.dumps(value)
    )


@st.composite
def texts(draw: st.DrawFn) -> str:
    """JSON-ish text: valid JSON, near-requests, deep nesting, huge numbers, NaN, repeated keys."""
    kind = draw(st.sampled_from(["json", "near", "deep", "number", "constant", "repeated", "garbage"]))
    if kind == "json":
        return _json_text(draw(JSON_VALUES), draw)
    if kind == "near":
        return _json_text(draw(near_requests()), draw)
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"scheduleId":[', "]}")]))
        return opener * depth + draw(st.sampled_from(["1", '"x"', "[]", ""])) + closer * depth
    if kind == "number":
        digits = draw(st.integers(1, 6000))
        literal = draw(st.sampled_from(["9", "-1", "0.5", "1e"])) + "7" * digits
        field = draw(st.sampled_from(["deadlineSeconds", "scheduleId", "x"]))
        return f'{{"scheduleId": "s", "{field}": {literal}}}'
    if kind == "constant":
        constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        return f'{{"scheduleId": "sched-demo", "deadlineSeconds": {constant}}}'
    if kind == "repeated":
        key = draw(st.sampled_from(["scheduleId", "validationMode", "x", ""]))
        first, second = draw(st.sampled_from(['"a"', "1", "null"])), draw(st.sampled_from(['"b"', "{}"]))
        return f'{{"{key}": {first}, "scheduleId": "sched-demo", "{key}": {second}}}'
    return draw(st.text(max_size=200))


ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "latin-1"]
MARKS = {
    "utf-8": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))  # anything at all, invalid UTF-8 included
    text = draw(texts())
    encoding = "utf-8" if draw(st.booleans()) else draw(st.sampled_from(ENCODINGS))
    raw = text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")
    if draw(st.booleans()) and encoding in MARKS:
        raw = MARKS[encoding] + raw
    return raw


# --- headers ------------------------------------------------------------------------------------------

MEDIA = [
    "application/json",
    "application/problem+json",
    "application/vnd.x+json",
    "application/json-patch",
    "text/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
]
PARAMETERS = [
    "",
    "; charset=utf-8",
    "; charset=UTF-16",
    ";charset=utf-32le",
    '; charset="utf-8"',
    "; charset=latin-1",
    "; charset=nonsense",
    "; q=1",
    ";",
    "; charset=",
]


@st.composite
def content_types(draw: st.DrawFn) -> str | None:
    roll = draw(st.integers(0, 9))
    if roll == 0:
        return None
    media = (MEDIA[0] if roll > 4 else draw(st.sampled_from(MEDIA))) + draw(st.sampled_from(PARAMETERS))
    flips = draw(st.lists(st.booleans(), min_size=len(media), max_size=len(media)))
    return "".join(c.upper() if flip else c for c, flip in zip(media, flips, strict=True))


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300).map(str.strip)


@st.composite
def key_headers(draw: st.DrawFn) -> list[tuple[str, str]]:
    kind = draw(st.sampled_from(["key", "key", "request-id", "none", "two", "both"]))
    key = draw(st.one_of(st.uuids().map(str), HEADER_TEXT))
    other = draw(HEADER_TEXT)
    return {
        "key": [("Idempotency-Key", key)],
        "request-id": [("X-Request-Id", key)],
        "none": [],
        "two": [("Idempotency-Key", key), ("Idempotency-Key", other)],
        "both": [("X-Request-Id", other), ("idempotency-key", key)],
    }[kind]


POOLED_KEYS = ["fuzz-key-1", "fuzz-key-2", "fuzz-key-3"]  # reused: replays and 422s
ODD_LENGTHS = ["abc", "-1", "-5", "+3", "1e3", "3, 3", "", "99999999999999999999", "0x10"]


@st.composite
def requests(
    draw: st.DrawFn, routes: tuple[str, ...] = ("create", "create", "create", "get", "cancel", "window")
) -> dict[str, Any]:
    """A request as the fuzz tests send it: method, path, query, body, content type, key headers and the
    framing of its body (`length`, `chunked`, `none`, or `odd`: Content-Length `odd_length`)."""
    route = draw(st.sampled_from(routes))
    some_id = quote(draw(st.text(max_size=140)) or "x", safe="")
    method, path = {
        "create": ("POST", "/publishes"),
        "get": ("GET", f"/publishes/{some_id}"),
        "cancel": ("POST", f"/publishes/{some_id}/cancel"),
        "window": ("GET", f"/schedules/{some_id}/publish"),
    }[route]
    if route == "create" and draw(st.integers(0, 9)) < 3:
        # An ordinary envelope around a near-request: accepted, replayed, joined, 409, 422 and 400 answers.
        key = draw(st.sampled_from(POOLED_KEYS) | st.uuids().map(str))
        return {
            "method": method,
            "path": path,
            "query": "",
            "body": json.dumps(draw(near_requests())).encode(),
            "content_type": "application/json",
            "keys": [("Idempotency-Key", key)],
            "framing": "length",
            "odd_length": "",
        }
    body = draw(bodies()) if route == "create" or draw(st.integers(0, 4)) == 0 else b""
    query = ""
    if draw(st.integers(0, 5)) == 0:
        pairs = draw(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=3))
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    return {
        "method": method,
        "path": path,
        "query": query,
        "body": body,
        "content_type": draw(content_types()),
        "keys": draw(key_headers()),
        "framing": draw(st.sampled_from(["length"] * 6 + ["chunked", "none", "odd"])),
        "odd_length": draw(st.sampled_from(ODD_LENGTHS)),
    }
