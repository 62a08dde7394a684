"""A request body as the API reads it: its media type and charset, its bytes decoded, its JSON parsed
within limits. Every way a body can be wrong ends here as `UnreadableBody` (415: not JSON we can read)
or `InvalidBody` (400: JSON, but not a request: each field and what is wrong with it), never as an
exception out of json or pydantic (which API Gateway would answer 502).

- Media type: `application/json`, or any `application/*+json`, in any case, with or without
  parameters (RFC 9110: type, subtype and parameter names are case-insensitive).
- Charset: UTF-8 is the contract (RFC 8259). A UTF-8 byte order mark is ignored (RFC 8259 allows it).
  UTF-16 and UTF-32 are read when the body says so: it begins with their byte order mark (PowerShell's
  `Out-File` writes UTF-16LE with one), or Content-Type names the charset (`charset=utf-16`; without a
  mark, its byte order is read from the first character, which JSON keeps ASCII). Any other charset, a
  mark that contradicts the declared charset, UTF-16/32 with neither, or bytes invalid in the encoding
  are refused, naming the charset (`charset=us-ascii` is read: ASCII is UTF-8).
- JSON: at most MAX_DEPTH levels of nesting (checked before parsing: the parser and the validation
  recurse), number literals of at most MAX_NUMBER_CHARS characters (Python refuses to read integers
  over 4,300 digits), no NaN or Infinity (not JSON), no key twice in one object (which one would win
  is the parser's choice, not the caller's).

The signature is checked on the raw bytes before any of this (api.guard), so decoding cannot change
what was signed.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Sequence
from typing import Any

JSON = "application/json"
MAX_DEPTH = 32  # the request is 3 levels deep; a deeper body is not one of ours
MAX_NUMBER_CHARS = 100
# RFC 8259's and 7159's encodings, and US-ASCII (a subset of UTF-8: a declared `charset=us-ascii` is read).
READABLE = ("utf-8", "ascii", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
# Longest first: UTF-32LE's mark begins with UTF-16LE's.
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# A string literal (its closing quote optional, so a match never backtracks) or a bracket.
_STRINGS = re.compile(r'"(?:[^"\\]+|\\.)*"?', re.S)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


class UnreadableBody(Exception):
    """415: not a JSON media type, a charset we do not read, or not JSON."""


class InvalidBody(Exception):
    """400: JSON, but not what a request can be; `problems` are (field, what is wrong)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems))
        self.problems = list(problems)


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """`type/subtype` in lower case, and the parameters (names in lower case, values unquoted)."""
    media, *parameters = content_type.split(";")
    found: dict[str, str] = {}
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        found[name.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), found


def is_json(media: str) -> bool:
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


def read_json(raw: bytes, content_type: str) -> tuple[Any, str]:
    """The body parsed, and its text (decoded, without a byte order mark)."""
    media, parameters = media_type(content_type)
    if not is_json(media):
        raise UnreadableBody(
            f"send the body as JSON with Content-Type: {JSON} (got {media or 'no content type'})"
        )
    text = decode(raw, parameters.get("charset"))
    return parse(text), text


def decode(raw: bytes, charset: str | None) -> str:
    declared = _charset(charset) if charset is not None else None
    marked = next(((mark, name) for mark, name in _MARKS if raw.startswith(mark)), None)
    if marked is not None:
        mark, encoding = marked
        if declared is not None and not encoding.startswith("utf-8" if declared == "ascii" else declared):
            raise UnreadableBody(
                f"the body begins with a {_label(encoding)} byte order mark but Content-Type says "
                f"charset={charset}: send UTF-8, or declare the charset the body is in"
            )
        data = raw[len(mark) :]
    elif declared is not None:
        encoding, data = declared, raw
        if declared in ("utf-16", "utf-32"):
            # No mark: the byte order shows in the first character, which JSON keeps ASCII.
            found = json.detect_encoding(raw)
            encoding = found if found.startswith(declared) else f"{declared}-be"  # RFC 2781's default
    else:
        encoding, data = "utf-8", raw
        found = json.detect_encoding(raw)
        if found != "utf-8":
            raise UnreadableBody(
                f"the body looks like {_label(found)} without a byte order mark: send UTF-8 (or name the "
                f"charset in Content-Type, e.g. {JSON}; charset={found})"
            )
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 4].hex()
        raise UnreadableBody(
            f"the body is not valid {_label(encoding)}: bytes {bad} at {exc.start + len(raw) - len(data)}"
            f" ({exc.reason}); send the JSON as UTF-8"
        ) from None


def _charset(name: str) -> str:
    try:
        normal = codecs.lookup(name).name
    except LookupError:
        normal = ""
    if normal not in READABLE:
        raise UnreadableBody(
            f"charset={name} is not read here: send the body as UTF-8 (UTF-16 and UTF-32 are read too)"
        )
    return normal


def _label(encoding: str) -> str:
    return encoding.upper().replace("-LE", "LE").replace("-BE", "BE").replace("-SIG", "")


def parse(text: str) -> Any:
    depth = _depth(text)
    if depth > MAX_DEPTH:
        raise InvalidBody([("body", f"nested more than {MAX_DEPTH} levels deep; a request is 3")])
    try:
        parsed = json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=_number(int),
            parse_float=_number(float),
            parse_constant=_constant,
        )
    except ValueError as exc:
        raise UnreadableBody(f"the body is not JSON: {exc}") from None
    problems: list[tuple[str, str]] = []
    _check(parsed, [], problems)
    if problems:
        raise InvalidBody(problems)
    return parsed


def _depth(text: str) -> int:
    """How deep the brackets outside strings go (the most, whether or not they balance)."""
    deepest = level = 0
    for bracket in _NOT_BRACKETS.sub("", _STRINGS.sub("", text)):
        if bracket in "[{":
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest


class _Odd:
    """A value the body may not hold, kept in place until its field is known."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


class _Repeated(dict[str, Any]):
    """An object that named a key twice (the keys in `repeated`)."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    made = dict(pairs)
    if len(made) == len(pairs):
        return made
    seen: set[str] = set()
    repeated = _Repeated(made)
    repeated.repeated = []
    for key, _ in pairs:
        if key in seen and key not in repeated.repeated:
            repeated.repeated.append(key)
        seen.add(key)
    return repeated


def _number(kind: type[int] | type[float]) -> Any:
    def read(literal: str) -> Any:
        if len(literal) > MAX_NUMBER_CHARS:
            return _Odd(f"a number {len(literal)} characters long; at most {MAX_NUMBER_CHARS} are read")
        return kind(literal)

    return read


def _constant(name: str) -> _Odd:
    return _Odd(f"{name} is not a JSON number")


def _check(value: Any, path: list[str], problems: list[tuple[str, str]]) -> None:
    """Each odd value and repeated key, named by its field (`callback.table`, `body` for the whole)."""
    if isinstance(value, _Odd):
        problems.append((".".join(path) or "body", value.problem))
    elif isinstance(value, dict):
        for key in getattr(value, "repeated", ()):
            problems.append((".".join([*path, key]), "appears more than once in the same object"))
        for key, item in value.items():
            _check(item, [*path, key], problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, [*path, str(index)], problems)
