"""The announcer: one AWS-service-style event per job status change, in order, retried from the first
event EventBridge did not take."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from wfm_publish.announcer import DETAIL_TYPE, SOURCE, Announcer, change

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "events" / "ddb_stream_job_ended.json").read_text())["Records"][0]


def record(sequence: int, new: str = "PUBLISHED", old: str | None = "PUBLISHING") -> dict[str, Any]:
    out = copy.deepcopy(SAMPLE)
    doc = json.loads(out["dynamodb"]["NewImage"]["doc"]["S"])
    doc["status"] = new
    if new != "PUBLISHED":
        doc.pop("reasonCode", None)
    out["dynamodb"]["NewImage"]["doc"]["S"] = json.dumps(doc)
    out["dynamodb"]["NewImage"]["status"]["S"] = new
    if old is None:
        out["eventName"] = "INSERT"
        out["dynamodb"].pop("OldImage", None)
    else:
        out["dynamodb"]["OldImage"]["status"]["S"] = old
    out["dynamodb"]["SequenceNumber"] = str(sequence)
    return out


class FakeEvents:
    def __init__(self, refuse: set[int] | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.refuse = refuse or set()  # positions (over all calls) EventBridge does not take

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        start = sum(len(c) for c in self.calls)
        self.calls.append(Entries)
        results = [
            {"ErrorCode": "InternalFailure"} if start + i in self.refuse else {"EventId": f"e{start + i}"}
            for i in range(len(Entries))
        ]
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_an_event_looks_like_an_aws_service_event() -> None:
    entry = change(record(1))
    assert entry is not None
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (SOURCE, DETAIL_TYPE, "default")
    detail = json.loads(entry["Detail"])
    assert set(detail) == {
        "publishId",
        "scheduleId",
        "businessUnitId",
        "status",
        "previousStatus",
        "reasonCode",
        "at",
        "version",
    }
    assert (detail["status"], detail["previousStatus"], detail["reasonCode"]) == (
        "PUBLISHED",
        "PUBLISHING",
        "PUBLISHED",
    )
    assert detail["scheduleId"] == "sched-demo" and detail["at"].endswith("Z")
    assert entry["Time"].isoformat().replace("+00:00", "Z")[:19] == detail["at"][:19]


def test_a_new_job_has_no_previous_status_and_a_kept_status_is_no_event() -> None:
    created = change(record(1, "QUEUED", None))
    assert created is not None and json.loads(created["Detail"])["previousStatus"] is None
    assert change(record(2, "PUBLISHED", "PUBLISHED")) is None  # the notifier's note on the job


def test_events_go_in_order_ten_at_a_time() -> None:
    events = FakeEvents()
    records = [record(i, "WAITING", "QUEUED") for i in range(1, 13)]
    assert Announcer(events).announce(records) == []  # type: ignore[arg-type]
    assert [len(c) for c in events.calls] == [10, 2]


def test_a_refused_event_is_retried_with_every_record_after_it() -> None:
    events = FakeEvents(refuse={3})
    records = [record(i, "WAITING", "QUEUED") for i in range(1, 13)]
    assert Announcer(events).announce(records) == [str(i) for i in range(4, 13)]  # type: ignore[arg-type]
    assert len(events.calls) == 1  # the second chunk waits for the retry


def test_the_sample_event_is_what_the_announcer_puts_for_the_sample_record() -> None:
    """events/eventbridge_job_state_change.json shows consumers the event (as a rule's target gets it)."""
    event = json.loads((ROOT / "events" / "eventbridge_job_state_change.json").read_text())
    entry = change(SAMPLE)
    assert entry is not None
    assert (event["source"], event["detail-type"]) == (entry["Source"], entry["DetailType"])
    assert event["detail"] == json.loads(entry["Detail"])
