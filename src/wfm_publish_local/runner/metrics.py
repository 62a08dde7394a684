"""CloudWatch's part: the embedded-metric-format lines the functions print are kept (and summed as
CloudWatch would) instead of going to the console."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any


class EmfCapture(io.TextIOBase):
    """Stands in for sys.stdout while the functions run: a line a function prints that is an EMF
    document (`{"_aws": ...}`, what Powertools Metrics prints) is kept, as CloudWatch would turn it into
    metric points; every other line goes to the stream it replaced. Lines are put together per thread
    (print writes the text and the newline separately, and the functions run in threads).

    `install` is called before each invocation, since something else may have replaced sys.stdout in
    between (pytest does, for each test); `uninstall` puts back what it replaced."""

    def __init__(self) -> None:
        super().__init__()
        self.inner: Any = sys.stdout
        self.documents: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._pending = threading.local()

    def install(self) -> None:
        with self._lock:
            if sys.stdout is not self:
                self.inner = sys.stdout
                sys.stdout = self

    def uninstall(self) -> None:
        with self._lock:
            if sys.stdout is self:
                sys.stdout = self.inner

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        buffered = getattr(self._pending, "text", "") + text
        *lines, rest = buffered.split("\n")
        self._pending.text = rest
        for line in lines:
            if not self._keep(line):
                self._forward(line + "\n")
        return len(text)

    def flush(self) -> None:
        rest = getattr(self._pending, "text", "")
        if rest and not rest.startswith('{"_aws"'):
            self._pending.text = ""
            self._forward(rest)
        with contextlib.suppress(ValueError, AttributeError):
            self.inner.flush()

    def _keep(self, line: str) -> bool:
        if not line.startswith('{"_aws"'):
            return False
        try:
            document = json.loads(line)
        except ValueError:
            return False
        with self._lock:
            self.documents.append(document)
        return True

    def _forward(self, text: str) -> None:
        with contextlib.suppress(ValueError):  # the stream it replaced was closed (a test's capture)
            self.inner.write(text)

    def totals(
        self, namespace: str | None = None
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
        with self._lock:
            documents = list(self.documents)
        return metric_totals(documents, namespace)


def metric_totals(
    documents: Iterable[Mapping[str, Any]], namespace: str | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
    """(metric name, its dimensions) -> every value the EMF documents gave it, as CloudWatch would
    aggregate them (Sum = sum of the values, SampleCount = how many, pNN over them)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    for document in documents:
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            if namespace is not None and directive.get("Namespace") != namespace:
                continue
            for dimension_set in directive.get("Dimensions") or [[]]:
                dimensions = tuple(sorted((name, str(document.get(name))) for name in dimension_set))
                for metric in directive.get("Metrics", []):
                    value: Any = document.get(metric["Name"], [])
                    values = value if isinstance(value, list) else [value]
                    out.setdefault((metric["Name"], dimensions), []).extend(float(v) for v in values)
    return out
