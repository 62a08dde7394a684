"""The official Genesys response models (docs/genesys-models.json, written by `make genesys-models`).

`Shapes.problems(value, model)` lists every way a JSON value differs from the official model: a
field the model does not have, a wrong type, a null (Genesys leaves empty fields out). The contract
tests hold the simulator's answers and notifications, and the client's wire models, to it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

MODELS_FILE = Path(__file__).resolve().parents[2] / "docs" / "genesys-models.json"
_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")
SCALARS = {"str", "int", "float", "bool", "datetime", "date", "object", "LocalDate"}


def _route_key(route: str) -> str:
    method, _, path = route.partition(" ")
    return f"{method} {re.sub(r'{[^}]+}', '{}', path)}"


@dataclass(frozen=True)
class Shapes:
    routes: dict[str, str]  # "GET /api/v2/..." (any parameter names) -> model type
    topics: dict[str, str]  # topic template -> eventBody model
    models: dict[str, dict[str, str]]  # model -> wire field -> type
    sdk_version: str
    errors: str = "ErrorBody"  # the model of every error answer

    def route_type(self, route: str) -> str:
        """The response type of a route template, whatever its parameters are called."""
        return self.routes[_route_key(route)]

    def topic_model(self, topic_name: str) -> str:
        """The eventBody model of a concrete topic name (ids filled in)."""
        for template, model in self.topics.items():
            pattern = "^" + re.escape(template).replace(r"\{id\}", "[^.]+") + "$"
            if re.match(pattern, topic_name):
                return model
        raise KeyError(topic_name)

    def problems(self, value: Any, type_name: str, where: str = "$") -> list[str]:
        """Every difference between `value` and the official type (empty: it conforms)."""
        if value is None:
            return [f"{where}: null (Genesys leaves an empty field out)"]
        listed, mapped = _LIST.match(type_name), _DICT.match(type_name)
        if listed or mapped:
            kind = list if listed else dict
            if not isinstance(value, kind):
                return [f"{where}: {type(value).__name__}, not {type_name}"]
            inner = (listed or mapped).group(1)  # type: ignore[union-attr]
            items = list(enumerate(value)) if isinstance(value, list) else list(value.items())
            return [p for k, item in items for p in self.problems(item, inner, f"{where}.{k}")]
        if type_name in SCALARS:
            return [] if _scalar_ok(value, type_name) else [f"{where}: {value!r} is not {type_name}"]
        fields = self.models.get(type_name)
        if fields is None or not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not the model {type_name}"]
        out = []
        for key, item in value.items():
            if key not in fields:
                out.append(f"{where}.{key}: not a field of {type_name}")
            else:
                out.extend(self.problems(item, fields[key], f"{where}.{key}"))
        return out


def _scalar_ok(value: Any, type_name: str) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    checks = {
        "object": lambda: True,
        "bool": lambda: isinstance(value, bool),
        "int": lambda: number and isinstance(value, int),
        "float": lambda: number,
        "str": lambda: isinstance(value, str),
        "date": lambda: _parses(dt.date.fromisoformat, value, 10),
        "LocalDate": lambda: _parses(dt.date.fromisoformat, value, 10),
        "datetime": lambda: _parses(lambda v: dt.datetime.fromisoformat(v.replace("Z", "+00:00")), value),
    }
    check: Any = checks[type_name]
    return bool(check())


def _parses(parse: Any, value: Any, length: int | None = None) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse(value[:length] if length else value)
    except ValueError:
        return False
    return True


@cache
def shapes(path: Path = MODELS_FILE) -> Shapes:
    doc = json.loads(path.read_text())
    return Shapes(
        routes={_route_key(r): t for r, t in doc["routes"].items()},
        topics=dict(doc["topics"]),
        models=doc["models"],
        sdk_version=str(doc["sdk"]["version"]),
        errors=str(doc.get("errors") or "ErrorBody"),
    )
