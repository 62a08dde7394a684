"""A function's handler module, loaded from functions/<name>/app.py as Lambda loads it."""

from __future__ import annotations

import gc
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@contextmanager
def loaded_handler(function: str) -> Iterator[ModuleType]:
    """A fresh module each time (its module-level state is the test's own), forgotten afterwards."""
    spec = importlib.util.spec_from_file_location(f"_{function}_under_test", FUNCTIONS / function / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        gc.enable()  # the module held the collector until its first answer, which a test may not ask for
