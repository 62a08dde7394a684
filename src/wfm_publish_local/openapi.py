"""The publish API's OpenAPI document, generated from the handler's routes and models.

wfm-publish openapi --output docs/openapi.json     (make openapi)
wfm-publish openapi --check docs/openapi.json      (fails when the committed document drifted)
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "functions" / "publish_trigger" / "app.py"
COMMITTED = ROOT / "docs" / "openapi.json"


def generate() -> str:
    """The document as committed: the handler's routes on Powertools' validating resolver
    (`Router.resolver()`), described by wfm_publish.api.openapi_document."""
    from wfm_publish.api import openapi_document

    name = "_wfm_publish_openapi_publish_trigger"
    spec = importlib.util.spec_from_file_location(name, HANDLER)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise ImportError(f"cannot load {HANDLER}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        document = json.loads(openapi_document(module.app.resolver()))
    finally:
        sys.modules.pop(name, None)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def check(path: Path = COMMITTED) -> str | None:
    """None when `path` holds the generated document; otherwise what to do about it."""
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if current == generate():
        return None
    return f"{path} is not what the code generates: run `make openapi` and commit the result"
