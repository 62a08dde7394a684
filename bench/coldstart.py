"""Cold start to first answer: each function from a fresh interpreter to its first event handled.

Lambda pays the module import once per container (the init phase), then the first event pays for
every client, secret and token it builds on first use. Each function runs in its own subprocess with
the layer on sys.path, built as `sam build` builds it (layers/common/build.py, from this environment:
the requirements, wfm_publish and their bytecode) and read-only as Lambda mounts it (no bytecode
written), and with the local stack's environment (moto server for SQS, DynamoDB and
Secrets Manager, the Genesys Cloud simulator, the ServiceNow stand-in, all started here, over HTTP),
and handles one real event: a signed POST /publishes, a validation message for a queued job, a weekly
business unit, a job's end on the table's stream (notifier and announcer), the dead-letter and
watchdog sweeps, a Genesys notification from the partner bus. The figure is the best of
RUNS (the machine's noise only ever adds time), from the probe's first line to the handler's return.

The floor is what any Python function that talks to AWS pays: `import boto3` plus the two clients it
needs (DynamoDB and SQS), in a fresh interpreter, without a call. Import-only figures are kept beside,
and so are the round trips the first answer makes and its wait for their answers (the floor makes
none): `x floor less calls` is the ratio with that wait taken out. botocore's floor (the same two
clients from botocore's own session, which the functions use) is printed beside boto3's. Each
function is also run on the layer without its bytecode, as SAM's python builder ships it: every
module is then compiled at every cold start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "weekly-many.yaml"  # 150 schedules: every run gets a fresh job
FUNCTIONS = {
    "publish_trigger": "PublishTriggerFunction",
    "trunk_validation": "TrunkValidationFunction",
    "conflict_retry": "ConflictRetryFunction",
    "weekly_unit": "WeeklyUnitFunction",
    "notifier": "NotifierFunction",
    "dead_letters": "DeadLettersFunction",
    "watchdog": "WatchdogFunction",
    "genesys_events": "GenesysEventsFunction",
    "announcer": "AnnouncerFunction",
}
RUNS = 5
TARGET_RATIO = 1.5

PROBE = """
import json, sys, time
started = time.perf_counter()
import app
imported = time.perf_counter()
# Each answer's wait (request sent -> status line read): every client reads its answers through
# http.client, which they all load anyway; only the wrapper's microseconds are added.
import http.client
waits = []
_getresponse = http.client.HTTPConnection.getresponse
def _timed(self, *args, **kwargs):
    began = time.perf_counter()
    try:
        return _getresponse(self, *args, **kwargs)
    finally:
        waits.append(time.perf_counter() - began)
http.client.HTTPConnection.getresponse = _timed

class Context:
    function_name = "coldstart"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:coldstart"
    memory_limit_in_mb = 512
    aws_request_id = "coldstart"
    log_group_name = log_stream_name = "coldstart"
    def get_remaining_time_in_millis(self): return 30000

event = json.load(open(sys.argv[1]))
result = app.handler(event, Context())
answered = time.perf_counter()
# VmHWM is this process's own peak: ru_maxrss would carry the parent's peak across fork and exec.
status = open("/proc/self/status").read().splitlines()
rss_kib = int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
print(json.dumps({"import_ms": (imported - started) * 1000, "first_ms": (answered - started) * 1000,
                  "calls": len(waits), "wait_ms": sum(waits) * 1000,
                  "max_rss_mib": rss_kib / 1024, "modules": len(sys.modules), "result": result},
                 default=str))
"""

FLOOR = """
import json, time
started = time.perf_counter()
import boto3
boto3.client("dynamodb")
boto3.client("sqs")
answered = time.perf_counter()
status = open("/proc/self/status").read().splitlines()
rss_kib = int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
print(json.dumps({"first_ms": (answered - started) * 1000, "max_rss_mib": rss_kib / 1024}))
"""
BOTOCORE_FLOOR = FLOOR.replace(
    'import boto3\nboto3.client("dynamodb")\nboto3.client("sqs")',
    "import botocore.session\nsession = botocore.session.get_session()\n"
    'session.create_client("dynamodb")\nsession.create_client("sqs")',
)
assert BOTOCORE_FLOOR != FLOOR


def _python(code: str, env: dict[str, str], cwd: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"probe failed in {cwd.name}: {out.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return answer


def _sqs_event(messages: list[dict[str, Any]], arn: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["messageId"],
                "receiptHandle": "coldstart",
                "body": m["body"],
                "attributes": m.get("attributes") or {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def _events(stack: Any, count: int) -> dict[str, list[dict[str, Any]]]:
    """`count` first events per function, each on its own fresh job or business unit."""
    import requests

    from wfm_publish.models import JobStatus
    from wfm_publish.signature import signed_headers
    from wfm_publish.store import DynamoJobStore
    from wfm_publish.weekly import WeeklyUnit
    from wfm_publish_local.demo import DEMO_CALLBACK
    from wfm_publish_local.runner.apigateway import api_gateway_event

    local = stack.stack
    events: dict[str, list[dict[str, Any]]] = {name: [] for name in FUNCTIONS}
    bu = iter(range(1, 151))

    def body(n: int, callback: bool = False) -> dict[str, Any]:
        return {
            "scheduleId": f"gen-sched-{n:03d}",
            "businessUnitId": f"gen-bu-{n:03d}",
            "weekId": "2023-10-23",
            "telephonySync": {"enabled": True, "delayMs": 0},  # the message visible at once
            **({"callback": DEMO_CALLBACK} if callback else {}),
        }

    for _ in range(count):  # the API's first POST
        raw = json.dumps(body(next(bu))).encode()
        key = uuid.uuid4().hex
        headers = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
            *signed_headers(stack.hmac_secret, "POST", "/publishes", raw, time.time(), key=key).items(),
        ]
        events["publish_trigger"].append(
            api_gateway_event(
                method="POST",
                path="/publishes",
                resource="/publishes",
                path_parameters=None,
                headers=headers,
                query=[],
                body=raw,
                stage="dev",
            )
        )
    # Queued jobs (through the API, nothing polling): their validation messages, and their items.
    queued = []
    for _ in range(3 * count):
        n = next(bu)
        answer = requests.post(
            f"{stack.api_url}/publishes",
            json=body(n, callback=True),
            headers={"Idempotency-Key": uuid.uuid4().hex},
            auth=stack.auth,
            timeout=30,
        )
        queued.append(answer.json()["publishId"])
    messages = {json.loads(m["body"])["jobId"]: m for m in local.peek_messages("ValidationQueue")}
    arn = local.queue_arn("ValidationQueue")
    for i, job_id in enumerate(queued[: 2 * count]):
        function = "trunk_validation" if i < count else "conflict_retry"
        events[function].append(_sqs_event([messages[job_id]], arn))
    store = DynamoJobStore(local.client("dynamodb"), local.table_name)
    for job_id in queued[2 * count :]:  # the stream record of the job ending PUBLISHED
        job = store.get_job(job_id)
        assert job is not None
        ended = job.model_copy(update={"status": JobStatus.PUBLISHED})
        doc = ended.model_dump_json(by_alias=True, exclude_none=True)
        image = {"pk": {"S": f"job#{job_id}"}, "status": {"S": "PUBLISHED"}, "doc": {"S": doc}}
        old = {"pk": {"S": f"job#{job_id}"}, "status": {"S": job.status.value}}
        record = {
            "eventID": uuid.uuid4().hex,
            "eventName": "MODIFY",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"pk": image["pk"]},
                "NewImage": image,
                "OldImage": old,
                "SequenceNumber": str(time.time_ns()),
                "SizeBytes": len(doc),
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/stream/coldstart",
        }
        events["notifier"].append({"Records": [record]})
    weekly_arn = local.queue_arn("WeeklyQueue")
    for _ in range(count):
        unit = WeeklyUnit(
            run="coldstart",
            business_unit_id=f"gen-bu-{next(bu):03d}",
            weeks_ahead=1,
            scheduled_time="2023-10-18T06:00:00Z",  # type: ignore[arg-type]
        )
        message = {
            "messageId": uuid.uuid4().hex,
            "body": unit.model_dump_json(by_alias=True, exclude_none=True),
        }
        events["weekly_unit"].append(_sqs_event([message], weekly_arn))
    events["dead_letters"] = [
        {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}} for _ in range(count)
    ]
    events["watchdog"] = events["dead_letters"]  # the sweep for overdue jobs (none here)
    events["announcer"] = events["notifier"]  # the same status change, put on the default bus
    sample = json.loads((ROOT / "events" / "genesys_schedule_update.json").read_text())
    events["genesys_events"] = [  # an update's outcome from the partner bus, recorded on the table
        {
            **sample,
            "id": uuid.uuid4().hex,
            "detail": {
                **sample["detail"],
                "eventBody": {**sample["detail"]["eventBody"], "operationId": f"op-coldstart-{i}"},
            },
        }
        for i in range(count)
    ]
    return events


def measure() -> dict[str, Any]:
    from wfm_publish_local.embedded import EmbeddedStack
    from wfm_publish_local.layer import layer_build

    with EmbeddedStack(SCENARIO, poll=[]) as stack, tempfile.TemporaryDirectory() as scratch:
        stack.simulator.reset()
        events = _events(stack, 2 * RUNS)  # half for the layer as built, half without its bytecode
        # The layer as `sam build` makes it (layers/common/build.py, from this environment), and as
        # SAM's python builder made it, without bytecode; read-only, as Lambda mounts it at /opt.
        layers = {
            "built": str(layer_build.build(Path(scratch) / "built", from_environment=True)),
            "no_bytecode": str(
                layer_build.build(Path(scratch) / "raw", from_environment=True, bytecode=False)
            ),
        }
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        folder = os.environ.get("COLDSTART_EVENTS") or scratch  # keep the events to profile by hand
        # Round-robin: the floor and every function once per round, so a busy moment on the shared
        # machine weighs on all of them alike; each figure is its best round.
        floor_runs: list[dict[str, Any]] = []
        botocore_runs: list[dict[str, Any]] = []
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            function: {layer: [] for layer in layers} for function in FUNCTIONS
        }
        for i in range(RUNS):
            floor_runs.append(_python(FLOOR, env, ROOT))
            botocore_runs.append(_python(BOTOCORE_FLOOR, env, ROOT))
            for function in FUNCTIONS:
                code = ROOT / "functions" / function
                for k, (name, layer) in enumerate(layers.items()):
                    path = Path(folder) / f"{function}-{name}-{i}.json"
                    path.write_text(json.dumps(events[function][k * RUNS + i]))
                    fenv = {**env, "PYTHONPATH": os.pathsep.join([str(code), layer])}
                    runs[function][name].append(_python(PROBE, fenv, code, str(path)))
        floor = min(floor_runs, key=lambda r: r["first_ms"])
        botocore_floor = min(r["first_ms"] for r in botocore_runs)
        results = []
        for function, by_layer in runs.items():
            measured = by_layer["built"]
            best = min(measured, key=lambda r: r["first_ms"])
            results.append(
                {
                    "function": function,
                    "import_ms": round(min(r["import_ms"] for r in measured), 1),
                    "first_ms": round(best["first_ms"], 1),
                    "ratio": round(best["first_ms"] / floor["first_ms"], 2),
                    "calls": best["calls"],
                    "wait_ms": round(best["wait_ms"], 1),
                    "ratio_less_calls": round((best["first_ms"] - best["wait_ms"]) / floor["first_ms"], 2),
                    "no_bytecode_ms": round(min(r["first_ms"] for r in by_layer["no_bytecode"]), 1),
                    "max_rss_mib": round(best["max_rss_mib"], 1),
                    "modules": best["modules"],
                    "answer": str(best["result"])[:80],
                }
            )
    return {
        "floor_ms": round(floor["first_ms"], 1),
        "floor_rss_mib": round(floor["max_rss_mib"], 1),
        "botocore_floor_ms": round(botocore_floor, 1),
        "functions": results,
    }


def run() -> dict[str, Any]:
    figures = measure()
    floor = figures["floor_ms"]
    print(f"Cold start to first answer, fresh interpreter, best of {RUNS}, against the local stack over HTTP")
    rss = figures["floor_rss_mib"]
    print(
        f"floor (import boto3 + DynamoDB and SQS clients): {floor:.0f} ms, {rss:.0f} MiB;"
        f" the same clients from botocore: {figures['botocore_floor_ms']:.0f} ms"
    )
    print("the layer as built (layers/common/build.py); 'no bytecode': as SAM's python builder made it")
    print(
        f"{'function':<18} {'import ms':>10} {'first answer ms':>16} {'calls':>6} {'wait ms':>8}"
        f" {'x floor':>8} {'less calls':>11} {'peak MiB':>9}  {'target':<8} {'no bytecode ms':>15}"
    )
    for r in figures["functions"]:
        met = "met" if r["ratio"] <= TARGET_RATIO else "NOT met"
        print(
            f"{r['function']:<18} {r['import_ms']:>10.0f} {r['first_ms']:>16.0f} {r['calls']:>6}"
            f" {r['wait_ms']:>8.0f} {r['ratio']:>7.2f}x {r['ratio_less_calls']:>10.2f}x"
            f" {r['max_rss_mib']:>9.0f}  {met:<8} {r['no_bytecode_ms']:>15.0f}"
        )
    return {"coldstart": figures}


if __name__ == "__main__":
    run()
