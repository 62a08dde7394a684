"""DynamoDB in memory, for virtual time: the calls `wfm_publish.store.DynamoJobStore` makes, with the
semantics it relies on, so the benchmark and the fault harness run the one real store.

It speaks the low-level client's shapes (attribute values as {"S": …} / {"N": …} / {"M": …}), evaluates
the condition and update expressions the store writes (a small grammar: comparisons, IN, AND / OR /
NOT, attribute_exists / attribute_not_exists, SET (with if_not_exists) and REMOVE on names and map
paths, ADD and DELETE on string sets), answers a failed condition with botocore's
ConditionalCheckFailedException carrying the item (ALL_OLD), serves the table's global secondary
indexes from template.yaml's key schema (sparse: an item without the index's keys is not in it; pages
by Limit, LastEvaluatedKey and ExclusiveStartKey), and removes items past their TTL when asked
(`expire`, as DynamoDB's background deletion does). Nothing else of DynamoDB is emulated.
tests/integration/test_memorydb_differential.py holds it to moto, operation by operation.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

Item = dict[str, Any]
TTL_ATTRIBUTE = "expiresAt"  # template.yaml's TimeToLiveSpecification
_TOKEN = re.compile(
    r"\s*(?:(?P<op><>|<=|>=|=|<|>|\(|\)|,)|(?P<word>[#:]?[A-Za-z_][A-Za-z0-9_]*(?:\.[#]?[A-Za-z_][A-Za-z0-9_]*)*))"
)


@dataclass(frozen=True)
class Index:
    name: str
    hash_key: str
    range_key: str | None = None


class MemoryDynamoDB:
    """One table (or several) in memory. `writes` counts the calls that changed an item."""

    def __init__(self, indexes: dict[str, list[Index]] | None = None) -> None:
        self.tables: dict[str, dict[str, Item]] = {}
        self.indexes = indexes or {}
        self.writes = 0
        self.on_write: list[Callable[[str, Item | None, Item | None], None]] = []  # the stream

    def _table(self, name: str) -> dict[str, Item]:
        return self.tables.setdefault(name, {})

    # --- the client's calls ----------------------------------------------------------------------

    def get_item(self, *, TableName: str, Key: Item, **_: Any) -> dict[str, Any]:
        item = self._table(TableName).get(_key(Key))
        return {"Item": _copy(item)} if item is not None else {}

    def put_item(self, *, TableName: str, Item: Item, **kwargs: Any) -> dict[str, Any]:
        table = self._table(TableName)
        key = _key(Item)
        old = table.get(key)
        self._check(old, kwargs)
        table[key] = _copy(Item)
        self._written(TableName, old, table[key])
        return {}

    def update_item(
        self, *, TableName: str, Key: Item, UpdateExpression: str, **kwargs: Any
    ) -> dict[str, Any]:
        table = self._table(TableName)
        key = _key(Key)
        old = table.get(key)
        self._check(old, kwargs)
        new = _copy(old) if old is not None else _copy(Key)
        _apply_update(new, UpdateExpression, kwargs.get("ExpressionAttributeNames", {}), kwargs)
        table[key] = new
        self._written(TableName, old, new)
        answer: dict[str, Any] = {}
        if kwargs.get("ReturnValues") == "ALL_NEW":
            answer["Attributes"] = _copy(new)
        return answer

    def delete_item(self, *, TableName: str, Key: Item, **kwargs: Any) -> dict[str, Any]:
        table = self._table(TableName)
        key = _key(Key)
        old = table.get(key)
        self._check(old, kwargs)
        if old is not None:
            del table[key]
            self._written(TableName, old, None)
        return {}

    def query(
        self,
        *,
        TableName: str,
        KeyConditionExpression: str,
        IndexName: str | None = None,
        Limit: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Index queries as the store writes them: `#h = :h` and an optional range comparison."""
        index = next((i for i in self.indexes.get(TableName, []) if i.name == IndexName), None)
        if index is None:
            raise ValueError(f"no index {IndexName} on {TableName}")
        names = kwargs.get("ExpressionAttributeNames", {})
        values = kwargs.get("ExpressionAttributeValues", {})
        matches = [
            item
            for item in self._table(TableName).values()
            if index.hash_key in item
            and (index.range_key is None or index.range_key in item)
            and _evaluate(KeyConditionExpression, item, names, values)
        ]
        if index.range_key is not None:  # ties in the range key: by the table's key, as moto orders them
            matches.sort(key=lambda i: (_plain(i[index.range_key]), i["pk"]["S"]))  # type: ignore[index]
        if kwargs.get("ScanIndexForward") is False:
            matches.reverse()
        start = kwargs.get("ExclusiveStartKey")
        if start is not None:  # the page after the item the last one ended on
            after = [i for i, item in enumerate(matches) if item["pk"] == start["pk"]]
            matches = matches[after[0] + 1 :] if after else []
        answer: dict[str, Any] = {}
        if Limit is not None and len(matches) > Limit:
            matches = matches[:Limit]
            last = matches[-1]
            keys = ["pk", index.hash_key] + ([index.range_key] if index.range_key else [])
            answer["LastEvaluatedKey"] = {k: _copy(last[k]) for k in keys}
        return answer | {"Items": _copy(matches), "Count": len(matches)}

    def expire(self, table: str, before: float) -> int:
        """DynamoDB's TTL: remove every item whose `expiresAt` (epoch seconds) is before `before`, as
        the background deletion does some time after an item expires (a stream REMOVE each).
        Returns how many were removed."""
        items = self._table(table)
        gone = [
            key
            for key, item in items.items()
            if "N" in item.get(TTL_ATTRIBUTE, {}) and float(item[TTL_ATTRIBUTE]["N"]) < before
        ]
        for key in gone:
            old = items.pop(key)
            self._written(table, old, None)
        return len(gone)

    # --- plumbing ------------------------------------------------------------------------------------

    def _check(self, old: Item | None, kwargs: dict[str, Any]) -> None:
        condition = kwargs.get("ConditionExpression")
        if condition is None:
            return
        names = kwargs.get("ExpressionAttributeNames", {})
        values = kwargs.get("ExpressionAttributeValues", {})
        if _evaluate(condition, old or {}, names, values):
            return
        response: dict[str, Any] = {
            "Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
        }
        if old is not None and kwargs.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
            response["Item"] = _copy(old)
        raise ClientError(response, "ConditionalWrite")  # type: ignore[arg-type]

    def _written(self, table: str, old: Item | None, new: Item | None) -> None:
        self.writes += 1
        for listener in self.on_write:
            listener(table, old, new)


def _copy(value: Any) -> Any:
    """A copy of an item or attribute value: dicts and lists are copied, strings shared (immutable).
    Several times cheaper than copy.deepcopy on items that hold a job's whole document."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _key(item: Item) -> str:
    return str(item["pk"]["S"])


def _plain(value: dict[str, Any]) -> Any:
    if "N" in value:
        return float(value["N"])
    if "S" in value:
        return value["S"]
    if "BOOL" in value:
        return value["BOOL"]
    if "NULL" in value:
        return None
    return repr(value)


# --- expressions -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[str, ...]:
    """An expression's tokens (the store writes a few dozen distinct expressions: kept once read)."""
    out: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read expression at {text[position:]!r}")
        out.append(match.group("op") or match.group("word"))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tuple(out)


def _path(word: str, names: dict[str, str]) -> list[str]:
    return [names.get(part, part) for part in word.split(".")]


def _lookup(item: Item, path: list[str]) -> dict[str, Any] | None:
    value: Any = {"M": item}
    for part in path:
        if "M" not in value or part not in value["M"]:
            return None
        value = value["M"][part]
    result: dict[str, Any] = value
    return result


class _Parser:
    def __init__(self, text: str, item: Item, names: dict[str, str], values: dict[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.position = 0
        self.item, self.names, self.values = item, names, values

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        word = self.tokens[self.position]
        if expected is not None and word.upper() != expected:
            raise ValueError(f"expected {expected}, got {word}")
        self.position += 1
        return word

    def condition(self) -> bool:
        return self._joined("OR", self.conjunction, operator.or_)

    def conjunction(self) -> bool:
        return self._joined("AND", self.negation, operator.and_)

    def _joined(self, word: str, operand: Callable[[], bool], combine: Callable[[bool, bool], bool]) -> bool:
        """Operands joined by `word`, left to right; each is parsed (and evaluated) whatever the result
        so far, so the tokens are always consumed."""
        result = operand()
        while (self.peek() or "").upper() == word:
            self.take()
            result = combine(result, operand())
        return result

    def negation(self) -> bool:
        if (self.peek() or "").upper() == "NOT":
            self.take()
            return not self.negation()
        return self.primary()

    def primary(self) -> bool:
        word = self.peek()
        if word == "(":
            self.take()
            result = self.condition()
            self.take(")")
            return result
        if word in {"attribute_exists", "attribute_not_exists"}:
            self.take()
            self.take("(")
            present = _lookup(self.item, _path(self.take(), self.names)) is not None
            self.take(")")
            return present if word == "attribute_exists" else not present
        left = self.operand()
        operator = self.take()
        if operator.upper() == "IN":
            self.take("(")
            options = [self.operand()]
            while self.peek() == ",":
                self.take()
                options.append(self.operand())
            self.take(")")
            return left is not None and left in options
        right = self.operand()
        if left is None or right is None:
            return operator == "<>" and not (left is None and right is None)
        outcome: bool = {
            "=": left == right,
            "<>": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[operator]
        return outcome

    def operand(self) -> Any:
        word = self.take()
        if word.startswith(":"):
            return _plain(self.values[word])
        value = _lookup(self.item, _path(word, self.names))
        return _plain(value) if value is not None else None


def _evaluate(text: str, item: Item, names: dict[str, str], values: dict[str, Any]) -> bool:
    parser = _Parser(text, item, names, values)
    result = parser.condition()
    if parser.peek() is not None:
        raise ValueError(f"unread expression left: {parser.tokens[parser.position :]}")
    return result


def _apply_update(item: Item, text: str, names: dict[str, str], kwargs: dict[str, Any]) -> None:
    """SET a = :v, m.#k = :w, c = if_not_exists(c, :x) ... REMOVE b, c ... ADD s :ss ... DELETE s :ss
    (the clauses the store and the weekly run log write; ADD and DELETE on string sets only)."""
    values = kwargs.get("ExpressionAttributeValues", {})
    tokens = _tokens(text)
    # Every operand reads the item as it was before this update.
    before = _copy(item) if "if_not_exists" in tokens else item
    clause = None
    position = 0
    while position < len(tokens):
        word = tokens[position]
        if word.upper() in {"SET", "REMOVE", "ADD", "DELETE"}:
            clause = word.upper()
            position += 1
            continue
        if word == ",":
            position += 1
            continue
        path = _path(word, names)
        parent = item
        for part in path[:-1]:
            parent = parent.setdefault(part, {"M": {}})["M"]
        if clause == "SET":
            if tokens[position + 1] != "=":
                raise ValueError(f"SET {word} needs '='")
            value, position = _operand(tokens, position + 2, before, names, values)
            parent[path[-1]] = _copy(value)
        elif clause == "REMOVE":
            parent.pop(path[-1], None)
            position += 1
        elif clause in {"ADD", "DELETE"}:
            given = set(values[tokens[position + 1]]["SS"])
            held = set(parent.get(path[-1], {}).get("SS", []))
            held = held | given if clause == "ADD" else held - given
            if held:
                parent[path[-1]] = {"SS": sorted(held)}
            else:
                parent.pop(path[-1], None)  # DynamoDB keeps no empty set
            position += 2
        else:
            raise ValueError(f"unsupported update expression {text!r}")


def _operand(
    tokens: tuple[str, ...], position: int, before: Item, names: dict[str, str], values: dict[str, Any]
) -> tuple[Any, int]:
    """A SET's value at `position`: `:v`, or `if_not_exists(path, :v)` read from the item as it was
    before the update; and where the clause goes on."""
    if tokens[position] == "if_not_exists":
        _, _, held, _, value, _ = tokens[position : position + 6]
        found = _lookup(before, _path(held, names))
        return (found if found is not None else values[value]), position + 6
    return values[tokens[position]], position + 1
