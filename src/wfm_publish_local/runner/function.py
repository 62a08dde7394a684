"""Lambda's part: a function of the template loaded from its CodeUri (its layers on the import path)
and invoked in-process with a context object."""

from __future__ import annotations

import gc
import importlib.util
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from wfm_publish_local.runner.crash import CrashPlan, FunctionCrashed, WorkerCrash
from wfm_publish_local.specs import FunctionSpec, LayerSpec

if TYPE_CHECKING:
    from wfm_publish_local.runner.metrics import EmfCapture


ACCOUNT_ID = "123456789012"

Handler = Callable[[Any, Any], Any]


@dataclass
class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_seconds: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self._deadline:
            self._deadline = time.monotonic() + self.timeout_seconds
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"
        if not self.log_stream_name:
            day = datetime.now(UTC).strftime("%Y/%m/%d")
            self.log_stream_name = f"{day}/[{self.function_version}]{uuid.uuid4().hex}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LayerPaths:
    """The import roots of the functions' layers, put on sys.path (as Lambda mounts a layer's python/
    under /opt) once each, and taken off by `remove`."""

    def __init__(self) -> None:
        self.added: list[str] = []

    def add(self, spec: FunctionSpec, layers: Mapping[str, LayerSpec], base: Path) -> None:
        """The layers `spec` names (by Ref) among `layers`, whose ContentUri is relative to `base`."""
        for layer_ref in spec.layers:
            layer_id = layer_ref.get("Ref") if isinstance(layer_ref, dict) else None
            layer = layers.get(str(layer_id))
            if layer is None:
                continue
            # With a python BuildMethod, sam build puts ContentUri's contents in python/, so
            # ContentUri is the import root; otherwise (no build, or a Makefile that builds the
            # layer's python/ from it, as CommonLayer's does) the import root is ContentUri's python/.
            folder = base / layer.content_uri
            if not (layer.build_method or "").startswith("python"):
                folder = folder / "python"
            path = str(folder.resolve())
            if folder.is_dir() and path not in sys.path:
                sys.path.append(path)
                self.added.append(path)

    def remove(self) -> None:
        for path in self.added:
            if path in sys.path:
                sys.path.remove(path)
        self.added = []


class FunctionTimeoutError(RuntimeError):
    """The handler ran past the function's Timeout: Lambda would have stopped it and reported an error."""


class LocalFunction:
    """One function of the template, loaded lazily from `<CodeUri>/<module>.py`, invoked in-process."""

    def __init__(
        self,
        spec: FunctionSpec,
        code_dir: Path,
        physical_name: str,
        *,
        module_prefix: str,
        region: str = "us-east-1",
        enforce_timeout: bool = True,
        crash: CrashPlan | None = None,
    ) -> None:
        self.spec = spec
        self.crash = crash
        self.code_dir = code_dir
        self.physical_name = physical_name
        self.region = region
        self.enforce_timeout = enforce_timeout
        self.arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{physical_name}"
        module_slug = re.sub(r"\W", "_", spec.handler_module)
        self.module_name = f"{module_prefix}_{spec.logical_id}_{module_slug}"
        self.invocations = 0
        self.errors = 0
        self.output: EmfCapture | None = None  # installed as sys.stdout before each invocation
        self._handler: Handler | None = None
        self._lock = threading.Lock()

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id

    @property
    def handler(self) -> Handler:
        with self._lock:
            if self._handler is None:
                self._handler = self._load()
            return self._handler

    def _load(self) -> Handler:
        path = self.code_dir / (self.spec.handler_module.replace(".", "/") + ".py")
        if not path.is_file():
            raise FileNotFoundError(f"{self.logical_id}: handler module {path} does not exist")
        spec = importlib.util.spec_from_file_location(self.module_name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
            raise ImportError(f"cannot load {path}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(self.module_name, None)
            raise
        finally:
            # A handler module holds the collector until its first answer (wfm_publish.coldstart): right
            # for a Lambda container, not for this process, which hosts every function for the run.
            gc.enable()
        handler = getattr(module, self.spec.handler_function, None)
        if not callable(handler):
            raise AttributeError(f"{self.logical_id}: {path} has no callable {self.spec.handler_function!r}")
        return cast(Handler, handler)

    def unload(self) -> None:
        with self._lock:
            self._handler = None
            sys.modules.pop(self.module_name, None)

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.physical_name,
            memory_limit_in_mb=self.spec.memory_size,
            invoked_function_arn=self.arn,
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=self.spec.timeout,
        )

    def invoke(self, event: Any) -> Any:
        """Call the handler as Lambda would. Raises what the handler raises, or FunctionTimeoutError
        when it ran longer than the function's Timeout (its result is then thrown away, as Lambda
        would never have seen it)."""
        handler = self.handler
        context = self.context()
        if self.output is not None:
            self.output.install()
        with self._lock:
            self.invocations += 1
        started = time.monotonic()
        try:
            if self.crash is None:
                result = handler(event, context)
            else:
                with self.crash.invocation(self.logical_id):
                    result = handler(event, context)
        except WorkerCrash as crash:
            with self._lock:
                self.errors += 1
            raise FunctionCrashed(f"{self.logical_id}: {crash}") from None
        except Exception:
            with self._lock:
                self.errors += 1
            raise
        elapsed = time.monotonic() - started
        if self.enforce_timeout and elapsed > self.spec.timeout:
            with self._lock:
                self.errors += 1
            raise FunctionTimeoutError(
                f"{self.logical_id}: Task timed out after {elapsed:.2f} seconds (Timeout {self.spec.timeout})"
            )
        return result
