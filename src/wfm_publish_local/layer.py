"""The CommonLayer's builder, layers/common/build.py (sam build runs it in the layer's folder, so it is
no package): loaded here for the tests and the cold-start benchmark, which build the layer offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BUILD = Path(__file__).resolve().parents[2] / "layers" / "common" / "build.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layer_build", BUILD)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the layer's builder from {BUILD}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layer_build = _load()
