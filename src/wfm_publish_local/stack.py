"""The local stack: a moto server, the resources of template.yaml, and the runner in front of them.

    with LocalStack(parameter_overrides={"GenesysBaseUrl": simulator.url}) as stack:
        requests.post(f"{stack.api_url}/publishes", json=body, headers={"Idempotency-Key": "k1"})
        stack.wait_until(lambda: stack.invocations["TrunkValidationFunction"] > 0)

Everything is built from the template: queues with their DLQs and RedrivePolicy, the table with its
key schema and TTL, the secrets; the functions' environment is the template's, resolved against
those local resources, and set in os.environ (one process hosts every function, so they share it).
boto3 reaches moto through AWS_ENDPOINT_URL: the core needs no endpoint switch.

With `aws_endpoint` the stack starts no moto server of its own: it provisions the template's
resources in that AWS-compatible endpoint (a shared moto server, a fault proxy in front of one), under
names no other stack there uses (`<stack>-<LogicalId>-<random>`), and deletes them when it stops.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import boto3

from wfm_publish_local.environment import FAKE_CREDENTIALS, ProcessEnvironment
from wfm_publish_local.intrinsics import Resolver
from wfm_publish_local.lifecycle import Running
from wfm_publish_local.provision import DEFAULT_SECRET_VALUES, Resources
from wfm_publish_local.runner import sqs
from wfm_publish_local.runner.apigateway import ApiFront, Route
from wfm_publish_local.runner.crash import CrashPlan
from wfm_publish_local.runner.eventbridge import EventCapture, EventRelay, invoke_async, rule_targets
from wfm_publish_local.runner.function import ACCOUNT_ID, LayerPaths, LocalFunction
from wfm_publish_local.runner.metrics import EmfCapture
from wfm_publish_local.runner.scheduler import schedule_event, schedule_input
from wfm_publish_local.runner.sources import EventSources
from wfm_publish_local.template import Template

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = ["LOCAL_ENVIRONMENT", "REPO_ROOT", "LocalStack", "ScheduleDisabled"]

log = logging.getLogger(__name__)

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]

# Set for every function on top of the template's environment (environment_overrides win).
LOCAL_ENVIRONMENT: Mapping[str, str] = {
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
}

# Module-level caches in the core that hold clients or settings from a previous stack: called (when
# the module is loaded and has the function) at start and stop, so stacks in one process are isolated:
# the services hold the clients (bound to the moto endpoint of the time) and the secrets they read.
RESET_HOOKS: tuple[tuple[str, str], ...] = (("wfm_publish.services", "reset"),)


class ScheduleDisabled(RuntimeError):
    """A schedule whose State is DISABLED was fired: on AWS it would invoke nothing."""


class LocalStack(Running):
    """moto server + the template's resources + API front, SQS pollers and schedule firing.

    template_path: relative to root (the repository root by default). CodeUri/ContentUri are read
        relative to the template's folder, as SAM does.
    parameter_overrides: template parameters (like `sam deploy --parameter-overrides`).
    environment_overrides: extra or replaced environment variables for every function.
    secret_values: logical id -> SecretString; DEFAULT_SECRET_VALUES fill in the rest, then the
        template's own SecretString / GenerateSecretString.
    visibility_timeout: a time scale for tests: replaces every queue's VisibilityTimeout (seconds),
        so a failed record comes back (and reaches the DLQ at maxReceiveCount) quickly. None keeps
        the template's values.
    api_port: port of the API front (0: any free port; see api_url).
    poll: logical ids of the functions whose SQS and DynamoDB stream event sources run; None: all,
        empty: none (the messages then stay on the queues for a test to read).
    stream_retry_delay: the pause before a failed stream batch is retried (doubled per retry, at most
        2 s); Lambda retries at once, this lets a test watch the retries.
    enforce_timeouts: an invocation longer than the function's Timeout counts as failed.
    aws_endpoint: an existing AWS-compatible endpoint (http://127.0.0.1:<port>) to provision in and
        use, instead of starting a moto server; None starts one.
    crash: a seeded CrashPlan that kills invocations at AWS calls (installed on every botocore session
        while the stack runs, so the functions' clients carry it); None: no deaths.
    sqs_concurrency: pollers per SQS event source (Lambda runs several batches of one queue at once).
    """

    def __init__(
        self,
        template_path: str | Path = "template.yaml",
        root: str | Path | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        environment_overrides: Mapping[str, str] | None = None,
        visibility_timeout: int | None = None,
        api_port: int = 0,
        *,
        secret_values: Mapping[str, str] | None = None,
        poll: Collection[str] | None = None,
        stack_name: str = "wfm-publish-local",
        region: str = "us-east-1",
        enforce_timeouts: bool = True,
        stream_retry_delay: float = 0.1,
        stream_poll_interval: float = 0.25,
        aws_endpoint: str | None = None,
        crash: CrashPlan | None = None,
        sqs_concurrency: int = 1,
    ) -> None:
        if sqs_concurrency < 1:
            raise ValueError("sqs_concurrency must be at least 1")
        self.crash = crash
        self.root = Path(root) if root is not None else REPO_ROOT
        path = Path(template_path)
        self.template_path = path if path.is_absolute() else self.root / path
        self.template = Template.load(self.template_path)
        self.parameters = self.template.parameter_values(parameter_overrides)
        self.environment_overrides = dict(environment_overrides or {})
        self.visibility_timeout = visibility_timeout
        self.api_port = api_port
        self.secret_values = {**DEFAULT_SECRET_VALUES, **(secret_values or {})}
        self.poll = None if poll is None else set(poll)
        self.stack_name = stack_name
        self.region = region
        self.enforce_timeouts = enforce_timeouts
        self.aws_endpoint = aws_endpoint.rstrip("/") if aws_endpoint else None

        self.environment: dict[str, str] = {}
        self.functions: dict[str, LocalFunction] = {}
        self.sources = EventSources(
            self,
            region=region,
            sqs_concurrency=sqs_concurrency,
            stream_poll_interval=stream_poll_interval,
            stream_retry_delay=stream_retry_delay,
        )
        self._moto: Any = None
        self._endpoint: str | None = None
        self._api: ApiFront | None = None
        self._env = ProcessEnvironment()
        self._layer_paths = LayerPaths()
        self._sqs: SQSClient | None = None
        self._started = False
        self.metrics: EmfCapture | None = None  # the EMF lines the functions printed (while started)
        self._event_capture: EventCapture | None = None
        self.resources = self._resources()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if self._started:
            return self
        self._started = True
        self.resources, self.environment, self.functions = self._resources(), {}, {}
        try:
            self._start_moto()
            self._run_reset_hooks()
            if self.crash is not None:
                # Before any function creates a client (each copies its session's handlers): on every
                # botocore session made from now on (the functions' own) and on boto3's default one.
                self.crash.install(boto3._get_default_session().events)
            self.resources.create()
            self._capture_output()
            self.environment = {
                **self.resources.function_environment(),
                **LOCAL_ENVIRONMENT,
                **self.environment_overrides,
            }
            self._env.set(self.environment)
            self._load_functions()
            for function in self.functions.values():
                function.output = self.metrics
            self._start_api()
            self._start_pollers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self.stop_polling()
        if self._api is not None:
            self._api.stop()
            self._api = None
        for function in self.functions.values():
            function.unload()
        if self.crash is not None:
            self.crash.uninstall()
        self._run_reset_hooks()
        self._release_output()
        self._layer_paths.remove()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        elif self._endpoint is not None:
            self.resources.delete()  # the endpoint outlives this stack: leave nothing behind
        self._env.restore()
        self._endpoint = None
        self._sqs = None
        self._started = False

    # ------------------------------------------------------------ accessors

    @property
    def refs(self) -> dict[str, str]:
        """Logical id -> what Ref answers for it in this stack."""
        return self.resources.refs

    @property
    def attributes(self) -> dict[tuple[str, str], str]:
        """(logical id, attribute) -> what Fn::GetAtt answers for it in this stack."""
        return self.resources.attributes

    @property
    def endpoint_url(self) -> str:
        if self._endpoint is None:
            raise RuntimeError("the local stack is not started")
        return self._endpoint

    @property
    def api_url(self) -> str:
        """Base URL of the API front (no stage prefix, like `sam local start-api`)."""
        if self._api is None:
            raise RuntimeError("no API: the stack is not started or the template has no Api events")
        return self._api.url

    def queue_url(self, logical_id: str) -> str:
        return self._physical(logical_id, "AWS::SQS::Queue")

    def queue_arn(self, logical_id: str) -> str:
        self._physical(logical_id, "AWS::SQS::Queue")
        return self.attributes[(logical_id, "Arn")]

    @property
    def table_name(self) -> str:
        return self._physical(self.template.table.logical_id, "AWS::DynamoDB::Table")

    def secret_arn(self, logical_id: str) -> str:
        return self._physical(logical_id, "AWS::SecretsManager::Secret")

    @property
    def invocations(self) -> dict[str, int]:
        """Invocations so far, per function logical id."""
        return {lid: f.invocations for lid, f in self.functions.items()}

    @property
    def redeliveries(self) -> dict[str, int]:
        """SQS records delivered again (received before), per function logical id."""
        return self.sources.redeliveries()

    @property
    def errors(self) -> dict[str, int]:
        """Invocations that raised (or timed out), per function logical id."""
        return {lid: f.errors for lid, f in self.functions.items()}

    def client(self, service: str) -> Any:
        """A boto3 client for the moto server (sqs, dynamodb, secretsmanager, …)."""
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def peek_messages(self, logical_id: str) -> list[dict[str, Any]]:
        """The visible messages of a queue, left on it (each peek counts as a receive: `sqs.peek`)."""
        return sqs.peek(self._sqs_client(), self.queue_url(logical_id))

    def dlq_messages(self, logical_id: str) -> list[dict[str, Any]]:
        """Peek at a dead-letter queue: logical_id is the DLQ itself or the queue that redrives to it."""
        queue = self.template.queues.get(logical_id)
        if queue is None:
            raise KeyError(f"{logical_id} is not a queue of the template")
        target = queue.redrive.target if queue.redrive is not None else logical_id
        return self.peek_messages(target)

    def queue_depth(self, logical_id: str) -> dict[str, int]:
        """visible / in_flight / delayed message counts (SQS's approximate numbers)."""
        return sqs.depth(self._sqs_client(), self.queue_url(logical_id))

    def events(self, source: str | None = None, detail_type: str | None = None) -> list[dict[str, Any]]:
        """The events the functions put on the default EventBridge bus so far, as a rule's target gets
        them (moto's bus, a capture rule and queue of the local stack's own), oldest first."""
        if self._event_capture is None:
            raise RuntimeError("the local stack is not started")
        return self._event_capture.events(source, detail_type)

    # ------------------------------------------------------------ invoking

    def invoke(self, function_logical_id: str, event: Any) -> Any:
        """Invoke a function directly (`sam local invoke -e`): the handler's result, or its exception."""
        return self._function(function_logical_id).invoke(event)

    def schedule_state(self, function_logical_id: str, event_name: str | None = None) -> str:
        """ENABLED or DISABLED: the schedule event's State with this stack's parameters and conditions."""
        event = schedule_event(self._function(function_logical_id).spec, event_name)
        return "ENABLED" if event.state is None else self._resolver().resolve_str(event.state).upper()

    def fire_schedule(
        self,
        function_logical_id: str,
        event_name: str | None = None,
        scheduled_time: datetime | None = None,
        input_overrides: Mapping[str, Any] | None = None,
    ) -> Any:
        """Invoke the function with its ScheduleV2 Input, as EventBridge Scheduler delivers it, and
        return the handler's result (an exception propagates: the scheduler's retries are not run).
        input_overrides replace keys of the (JSON object) Input, as editing the schedule would.
        ScheduleDisabled: the schedule's State is DISABLED here, so EventBridge Scheduler would invoke
        nothing."""
        function = self._function(function_logical_id)
        event = schedule_event(function.spec, event_name)
        if self.schedule_state(function_logical_id, event.name) == "DISABLED":
            raise ScheduleDisabled(
                f"{function_logical_id}'s schedule {event.name} is DISABLED in this stack (its State):"
                " EventBridge Scheduler invokes nothing"
            )
        arn = f"arn:aws:scheduler:{self.region}:{ACCOUNT_ID}:schedule/default/{self.stack_name}-{event.name}"
        raw = event.input if event.input is None else self._resolver().resolve_str(event.input)
        payload = schedule_input(raw, schedule_arn=arn, scheduled_time=scheduled_time)
        if input_overrides:
            payload = {**payload, **input_overrides}
        return function.invoke(payload)

    def put_events(self, bus: str, events: Iterable[dict[str, Any]]) -> int:
        """Deliver events arriving on `bus` to the functions whose EventBridgeRule matches them, as
        EventBridge does (an asynchronous invoke, retried); the number of invocations that succeeded."""
        resolver = self._resolver()
        done = 0
        for event in events:
            for function in rule_targets(self.functions.values(), bus, event, resolver.resolve_str):
                done += invoke_async(function, event)
        return done

    def relay_events(self, bus: str, fetch: Callable[[int], tuple[list[dict[str, Any]], int]]) -> EventRelay:
        """Keep delivering the events `fetch(cursor)` finds (e.g. the Genesys simulator's
        notifications) to the rules on `bus`, until the stack stops."""
        relay = EventRelay(bus, fetch, lambda event: self.put_events(bus, [event]))
        relay.start()
        self.sources.add_relay(relay)
        return relay

    @staticmethod
    def wait_until(
        predicate: Callable[[], T],
        timeout: float = 10.0,
        interval: float = 0.05,
        message: str = "condition",
    ) -> T:
        """Poll predicate until truthy and return its value; TimeoutError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{message} not met within {timeout:g} s")
            time.sleep(interval)

    # ------------------------------------------------------------ internals

    def _function(self, logical_id: str) -> LocalFunction:
        try:
            return self.functions[logical_id]
        except KeyError:
            raise KeyError(
                f"{logical_id} is not a function of the template (or the stack is not started)"
            ) from None

    def _physical(self, logical_id: str, resource_type: str) -> str:
        if (
            logical_id not in self.template.resources
            or self.template.resource_type(logical_id) != resource_type
        ):
            raise KeyError(f"{logical_id} is not a {resource_type} of the template")
        if logical_id not in self.refs:
            raise RuntimeError("the local stack is not started")
        return self.refs[logical_id]

    def _sqs_client(self) -> SQSClient:
        if self._sqs is None:
            self._sqs = self.client("sqs")
        return self._sqs

    def _start_moto(self) -> None:
        if self.aws_endpoint is not None:
            self._endpoint = self.aws_endpoint
        else:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self._endpoint = f"http://{host}:{port}"
        self.resources.endpoint = self._endpoint
        self._env.point_at(self._endpoint, self.region)

    @staticmethod
    def _run_reset_hooks() -> None:
        for module_name, function_name in RESET_HOOKS:
            hook: Any = sys.modules.get(module_name)
            for part in function_name.split("."):
                hook = getattr(hook, part, None) if hook is not None else None
            if callable(hook):
                hook()

    def _resources(self) -> Resources:
        """Fresh names (a new suffix) for each start."""
        return Resources(
            self.template,
            self.parameters,
            self.client,
            stack_name=self.stack_name,
            region=self.region,
            secret_values=self.secret_values,
            visibility_timeout=self.visibility_timeout,
            endpoint=self._endpoint or "",
        )

    def _resolver(self) -> Resolver:
        return self.resources.resolver()

    def _capture_output(self) -> None:
        """CloudWatch's part: EMF lines become metrics (kept in self.metrics, not printed), and the
        default bus's events are kept for `events()`."""
        self.metrics = EmfCapture()
        self._event_capture = EventCapture(
            self.client("events"), self._sqs_client(), self.resources.name("EventCapture", 80)
        )

    def _release_output(self) -> None:
        if self.metrics is not None:
            self.metrics.flush()
            self.metrics.uninstall()
        self._event_capture = None

    def _load_functions(self) -> None:
        base = self.template.directory
        layers = self.template.layers
        prefix = f"_wfm_local_{self.resources.suffix}"
        resolver = self._resolver()
        for lid, spec in self.template.functions.items():
            if spec.condition is not None and not resolver.condition(spec.condition):
                continue  # not created with these parameters (e.g. no Genesys event bus)
            self._layer_paths.add(spec, layers, base)
            self.functions[lid] = LocalFunction(
                spec,
                (base / spec.code_uri).resolve(),
                self.refs.get(lid, self.resources.name(lid, 64)),
                module_prefix=prefix,
                region=self.region,
                enforce_timeout=self.enforce_timeouts,
                crash=self.crash,
            )

    def _start_api(self) -> None:
        routes: list[Route] = []
        resolver = self._resolver()
        for function in self.functions.values():
            for event in function.spec.api_events:
                stage = "Prod"  # SAM's implicit API stage
                if event.rest_api_id is not None:
                    api_props = self.template.properties(event.rest_api_id)
                    stage = resolver.resolve_str(api_props.get("StageName", stage))
                routes.append(Route(event.method, event.path, function, stage))
        if routes:
            self._api = ApiFront(routes, port=self.api_port)
            self._api.start()

    def _start_pollers(self) -> None:
        self.sources.start(f for lid, f in self.functions.items() if self.poll is None or lid in self.poll)

    def start_polling(self, *function_logical_ids: str) -> None:
        """Start the SQS and stream event sources of these functions (all when none is named) that are
        not running yet. With poll=[] a test can put messages on a queue first, then start polling, and
        the first batch holds them all."""
        self.sources.start(self._function(lid) for lid in function_logical_ids or tuple(self.functions))

    def stop_polling(self) -> None:
        """Stop every SQS and stream event source and relay (the batch in hand is finished first)."""
        self.sources.stop()

    def __repr__(self) -> str:
        state = f"moto at {self._endpoint}" if self._started else "stopped"
        return f"LocalStack({self.template_path}, {state})"
