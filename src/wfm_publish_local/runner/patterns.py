"""The EventBridge pattern syntax, which EventBridge rules and Lambda's event filtering both use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FilterPatternError(ValueError):
    """A FilterCriteria pattern uses syntax the local runner does not know."""


def filter_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Lambda event filtering (the EventBridge pattern syntax) for one record: every key of the
    pattern must match; a list holds alternatives; {"prefix"}, {"suffix"}, {"anything-but"},
    {"exists"}, {"equals-ignore-case"} and {"numeric"} are the operators."""
    for key, expected in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not filter_matches(expected, value):
                return False
        elif isinstance(expected, list):
            if not any(_rule_matches(rule, present, value) for rule in expected):
                return False
        else:
            raise FilterPatternError(f"pattern values must be lists or objects, got {expected!r} at {key!r}")
    return True


def _rule_matches(rule: Any, present: bool, value: Any) -> bool:  # noqa: PLR0911 - one branch per operator
    if not isinstance(rule, Mapping):
        if not present:
            return False
        return rule in value if isinstance(value, list) else bool(value == rule)
    if len(rule) != 1:
        raise FilterPatternError(f"one operator per rule, got {rule!r}")
    ((op, arg),) = rule.items()
    if op == "exists":
        return present is bool(arg)
    if not present:
        return False
    values = value if isinstance(value, list) else [value]
    if op == "prefix":
        return any(isinstance(v, str) and v.startswith(str(arg)) for v in values)
    if op == "suffix":
        return any(isinstance(v, str) and v.endswith(str(arg)) for v in values)
    if op == "equals-ignore-case":
        return any(isinstance(v, str) and v.lower() == str(arg).lower() for v in values)
    if op == "anything-but":
        if isinstance(arg, Mapping) and "prefix" in arg:
            return all(not (isinstance(v, str) and v.startswith(str(arg["prefix"]))) for v in values)
        excluded = arg if isinstance(arg, list) else [arg]
        return all(v not in excluded for v in values)
    if op == "numeric":
        return any(_numeric(v, arg) for v in values)
    raise FilterPatternError(f"unsupported filter operator {op!r}")


def _numeric(value: Any, conditions: list[Any]) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    compare = {
        "=": number.__eq__,
        "<": number.__lt__,
        "<=": number.__le__,
        ">": number.__gt__,
        ">=": number.__ge__,
    }
    pairs = zip(conditions[::2], conditions[1::2], strict=False)
    return all(compare[str(op)](float(bound)) for op, bound in pairs)
