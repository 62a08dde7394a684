"""The bill: what one publish costs on AWS, from what a virtual run counted; and the job's writes.

Three cases: one ServiceNow request during an Edge update of 2 s and of 2 h (scenarios/demo.yaml, as
bench/strategies.py runs it, the request half-way through the change, with a callback record), and the
weekly run of 1,000 business units (bench/weekly.py), per publish. Counts come from bench/meter.py:
Lambda invocations and their modelled durations x the template's MemorySize (arm64), SQS requests
(sends, one receive and one delete batch per invocation), DynamoDB read and write units by item size,
Secrets Manager reads, log bytes, EventBridge Scheduler invocations, API Gateway requests.

Also the job's write table: one request during an Edge update of 15 s, 10 min, 2 h, 6 h:
writes of the job item, its final size, and the write units they cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.meter import PLATFORM_LOG_BYTES, SECRETS_MS, Engine, LogMeter, metered_logs
from bench.strategies import CHANGE_START, DEADLINE, REQUEST, SETTLE_WINDOW, scenario_for
from wfm_publish.models import PublishRequest
from wfm_publish.waiting import Timing
from wfm_publish_local.demo import DEMO_CALLBACK

# Published us-east-1 prices, as of 2026-11-30 (on-demand, no free tier counted):
PRICES_AS_OF = "2026-11-30"
LAMBDA_GB_SECOND_ARM = 0.0000133334  # aws.amazon.com/lambda/pricing, arm64
LAMBDA_REQUEST = 0.20 / 1e6
SQS_REQUEST = 0.40 / 1e6  # standard queue, per request (each 64 KB chunk)
# aws.amazon.com/dynamodb/pricing/on-demand: on-demand throughput halved on 2024-11-01 to $0.625 per
# million write request units and $0.125 per million read request units (us-east-1).
DYNAMODB_WRITE_UNIT = 0.625 / 1e6
DYNAMODB_READ_UNIT = 0.125 / 1e6
# GetRecords calls made by a Lambda trigger are free (DynamoDB Streams pricing; docs: "Evaluate your
# DynamoDB streams usage"); other consumers pay $0.02 per 100,000 streams read request units.
STREAM_READ_BY_LAMBDA = 0.0
SECRETS_CALL = 0.05 / 10_000
LOG_INGEST_GB = 0.50  # CloudWatch Logs standard ingestion
EVENTBRIDGE_EVENT = 1.00 / 1e6  # custom events / Scheduler invocations
API_GATEWAY_REQUEST = 3.50 / 1e6  # REST API, first 333 million a month
TARGET_2H = 0.0002  # dollars per publish, 2 h case

WRITE_TABLE = [("15 s", 15.0), ("10 min", 600.0), ("2 h", 7200.0), ("6 h", 21600.0)]
TODAY = {"15 s": (5, 3.6, 17), "10 min": (11, 5.3, 45), "2 h": (37, 12.7, 278), "6 h": (87, 26.8, 1265)}


@dataclass
class Counts:
    publishes: int
    invocations: int
    gb_seconds: float
    sqs_requests: int
    write_units: int
    read_units: float
    stream_records: int
    secrets_calls: int
    log_bytes: int
    eventbridge_events: int
    api_requests: int


def counts(engine: Engine, logs: LogMeter, publishes: int, api_requests: int = 0) -> Counts:
    gb_seconds = sum(
        math.ceil(i.duration_ms) / 1000 * engine.memory_mb[i.function] / 1024 for i in engine.invocations
    )
    table = engine.table
    return Counts(
        publishes=publishes,
        invocations=len(engine.invocations),
        gb_seconds=gb_seconds,
        sqs_requests=engine.run.queues.messages_sent
        + engine.weekly_queue.requests
        + engine.sqs_receives
        + engine.sqs_deletes,
        write_units=table.write_units,
        read_units=table.read_units,
        stream_records=table.stream_records,
        secrets_calls=engine.secrets_calls,
        log_bytes=logs.bytes + PLATFORM_LOG_BYTES * len(engine.invocations),
        eventbridge_events=engine.eventbridge_events,
        api_requests=api_requests,
    )


def bill(c: Counts) -> dict[str, float]:
    return {
        "Lambda duration": c.gb_seconds * LAMBDA_GB_SECOND_ARM,
        "Lambda requests": c.invocations * LAMBDA_REQUEST,
        "SQS": c.sqs_requests * SQS_REQUEST,
        "DynamoDB writes": c.write_units * DYNAMODB_WRITE_UNIT,
        "DynamoDB reads": c.read_units * DYNAMODB_READ_UNIT,
        "Streams reads": 0.0 * STREAM_READ_BY_LAMBDA,
        "Secrets Manager": c.secrets_calls * SECRETS_CALL,
        "CloudWatch Logs": c.log_bytes / 1e9 * LOG_INGEST_GB,
        "EventBridge": c.eventbridge_events * EVENTBRIDGE_EVENT,
        "API Gateway": c.api_requests * API_GATEWAY_REQUEST,
    }


def one_publish(
    duration: float, *, arrival: float = 0.5, seed: int = 0, notify: bool = True
) -> tuple[Engine, LogMeter, str]:
    """A ServiceNow request `arrival` of the way through an Edge update of `duration`, to its end."""
    scenario = scenario_for(duration)
    timing = Timing(settle_window=SETTLE_WINDOW)
    engine = Engine(scenario, 1_700_000_000.0, timing=timing, seed=seed, deadline_seconds=DEADLINE)
    engine.clock.advance(CHANGE_START + arrival * duration)
    request = PublishRequest.model_validate({**REQUEST, "callback": DEMO_CALLBACK})
    with metered_logs() as logs:
        accepted = engine.invoke(
            "PublishTriggerFunction", lambda: engine.intake.accept(request, f"bench-cost-{seed}")
        )
        engine.secrets_calls += 1  # the API's signing secret (cached 5 minutes per container)
        engine.invocations[-1].duration_ms += SECRETS_MS
        engine.drain(limit=DEADLINE + 3600)
        job_id = str(accepted.body["publishId"])
        if notify:
            engine.notify(engine.store.jobs[job_id])
            engine.announce()
    return engine, logs, job_id


def write_table() -> list[dict[str, Any]]:
    rows = []
    for label, duration in WRITE_TABLE:
        engine, _, job_id = one_publish(duration, notify=False)  # the pipeline's writes only
        meter = engine.table
        rows.append(
            {
                "change": label,
                "status": engine.store.jobs[job_id].status.value,
                "jobWrites": meter.job_writes[job_id],
                "jobItemKiB": round(meter.job_sizes.get(job_id, 0) / 1024, 1),
                "jobWriteUnits": meter.job_write_units[job_id],
                "tableWriteUnits": meter.write_units,
            }
        )
    return rows


def run() -> dict[str, Any]:
    cases: dict[str, Counts] = {}
    for label, duration in (("2 s change", 2.0), ("2 h change", 7200.0)):
        engine, logs, _ = one_publish(duration)
        # ServiceNow's POST, and one GET of the publish when the callback arrives.
        cases[label] = counts(engine, logs, publishes=1, api_requests=2)
    from bench.weekly import simulated

    engine, figures, logs = simulated()  # the weekly benchmark's run when it ran first (make bench)
    cases["weekly, 1,000 BUs"] = counts(engine, logs, publishes=figures["jobs"])
    print(f"The bill per publish, us-east-1 prices as of {PRICES_AS_OF} (sources in bench/cost.py)")
    names = list(cases)
    print(f"{'':<18}" + "".join(f"{n:>22}" for n in names))
    per_publish = {n: {k: v / c.publishes for k, v in bill(c).items()} for n, c in cases.items()}
    for item in per_publish[names[0]]:
        print(f"{item:<18}" + "".join(f"{'$' + format(per_publish[n][item], '.8f'):>22}" for n in names))
    totals = {n: sum(per_publish[n].values()) for n in names}
    print(f"{'total':<18}" + "".join(f"{'$' + format(totals[n], '.8f'):>22}" for n in names))
    print("counted per publish:")
    for n, c in cases.items():
        p = c.publishes
        print(
            f"  {n}: {c.invocations / p:.1f} invocations, {c.gb_seconds / p:.3f} GB-s,"
            f" {c.sqs_requests / p:.1f} SQS requests, {c.write_units / p:.0f} WCU,"
            f" {c.read_units / p:.0f} RCU,"
            f" {c.stream_records / p:.0f} stream records, {c.secrets_calls / p:.3f} secret reads,"
            f" {c.log_bytes / p / 1024:.1f} KiB of logs"
        )
    verdict = "met" if totals["2 h change"] <= TARGET_2H else "NOT met"
    print(
        f"target at most ${TARGET_2H} per publish in the 2 h case: ${totals['2 h change']:.6f} -> {verdict}"
    )

    print("\nJob writes, one request during an Edge update (demo scenario, request half-way through):")
    print(f"{'change':<8} {'job writes':>10} {'job item':>10} {'job WCU':>8} {'table WCU':>10}   before")
    table = write_table()
    for row in table:
        was = TODAY[row["change"]]
        print(
            f"{row['change']:<8} {row['jobWrites']:>10} {row['jobItemKiB']:>6.1f} KiB"
            f" {row['jobWriteUnits']:>8,}"
            f" {row['tableWriteUnits']:>10,}   {was[0]} / {was[1]} KiB / {was[2]:,}"
        )
    return {
        "cost": {
            n: {"counts": vars(c), "perPublish": per_publish[n], "total": totals[n]} for n, c in cases.items()
        },
        "writes": table,
    }


if __name__ == "__main__":
    run()
