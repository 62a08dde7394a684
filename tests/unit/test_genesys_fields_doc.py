"""docs/genesys-fields.md names every Genesys field a decision reads, with its official description.

The pipeline runs over every org kind (and the paths that read the rest: events, a deferred publish,
409s, a downloaded query) while each read of a wire model's field is recorded with the module that
read it. Every field a decision module read must have its row in the table.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.support.virtual import raw_scenario, start
from wfm_publish import genesys_wire as w
from wfm_publish.models import JobStatus

DOC = Path(__file__).resolve().parents[2] / "docs" / "genesys-fields.md"
DECISIONS = {
    f"wfm_publish.{m}"
    for m in (
        "readiness",
        "scope",
        "capacity",
        "capacity_report",
        "conflicts",
        "validation",
        "pipeline",
        "genesys_queries",
        "genesys_events",
        "wake",
        "weekly",
        "genesys_wire",
    )
}
# Each wire model as the official model it reads (docs/genesys-models.json names).
OFFICIAL = {
    "Schedule": "BuScheduleMetadata",
    "ScheduleMetadata": "WfmVersionedEntityMetadata",
    "ScheduleManagementUnit": "BuManagementUnitScheduleSummary",
    "ScheduleAgent": "UserReference",
    "UpdateOperation": "BuAsyncScheduleResponse",
    "AgentSchedule": "BuAgentScheduleQueryResponse",
    "Shift": "BuAgentScheduleShift",
    "Activity": "BuAgentScheduleActivity",
    "ScheduleNotice": "WfmBuScheduleTopicBuScheduleNotification",
    "QueryResultNotice": "WfmBuScheduleQueryResultTopicBuScheduleSearchResultNotification",
    "SoftwareStatus": "DomainEdgeSoftwareUpdateDto",
    "Edge": "Edge",
    "ConnectedStatus": "ConnectedStatus",
    "Trunk": "Trunk",
    "TrunkBaseSettings": "TrunkBase",
    "Site": "Site",
    "OutboundRoute": "OutboundRouteBase",
    "Campaign": "Campaign",
    "LineDistribution": "CampaignOutboundLinesDistribution",
    "LinesReserved": "CampaignOutboundLinesReservation",
    "LinesAllocated": "CampaignOutboundLinesAllocation",
    "OutboundSettings": "OutboundSettings",
    "TrunkCalls": "TrunkMetricsCalls",
}
IDENTITY = {"id", "name"}  # which entity: not a meaning to decide from


def wire_models() -> list[type[BaseModel]]:
    return [
        m
        for m in vars(w).values()
        if inspect.isclass(m) and issubclass(m, BaseModel) and m.__module__ == w.__name__
    ]


@pytest.fixture
def reads() -> Iterator[set[tuple[str, str]]]:
    """(official model, wire field) of every field a decision module reads while the test runs."""
    seen: set[tuple[str, str]] = set()

    def spy(self: BaseModel, name: str) -> Any:
        value = object.__getattribute__(self, name)
        fields = type(self).model_fields
        if name in fields and name not in IDENTITY:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller in DECISIONS:
                model = OFFICIAL.get(type(self).__name__, type(self).__name__)
                seen.add((model, fields[name].alias or name))
        return value

    models = wire_models()
    for model in models:
        model.__getattribute__ = spy  # type: ignore[method-assign,assignment]
    try:
        yield seen
    finally:
        for model in models:
            del model.__getattribute__  # type: ignore[method-assign]


def documented() -> set[tuple[str, str]]:
    """(model, field) named in the table's first column: `Model.field`, `Model.a`, `.b`, and the
    fields of a parenthesised `(Model.x, .y)`."""
    rows = [line.split("|")[1] for line in DOC.read_text().splitlines() if line.startswith("| `")]
    found: set[tuple[str, str]] = set()
    for cell in rows:
        model = None
        for name in re.findall(r"`?([A-Z][A-Za-z]*)?\.([a-zA-Z]+)", cell):
            model = name[0] or model
            if model:
                found.add((model, name[1]))
    return found


def test_the_table_parses_into_fields() -> None:
    found = documented()
    assert ("Trunk", "inService") in found
    assert ("DomainEdgeSoftwareUpdateDto", "executeStopTime") in found
    assert ("BuAgentScheduleActivity", "activityCodeId") in found


def test_every_field_a_decision_reads_is_in_the_table(reads: set[tuple[str, str]]) -> None:
    for name in ("byoc-premises", "byoc-cloud", "genesys-cloud-voice", "hybrid"):
        run, job_id = start(raw_scenario(name))
        assert run.run(job_id).status is JobStatus.PUBLISHED
    run, job_id = start(raw_scenario("demo"), events=True)  # telephony events, update outcomes, a 409
    assert run.run(job_id).status is JobStatus.PUBLISHED
    deferred = {"scheduleId": "sched-demo", "validationMode": "deferred"}
    run, job_id = start(raw_scenario("byoc-premises", downloadAgentQueryOver=0), deferred)
    assert run.run(job_id).status is JobStatus.PUBLISHED
    assert {("Trunk", "inService"), ("Site", "mediaModel"), ("TrunkBase", "properties")} <= reads
    missing = sorted(reads - documented())
    assert not missing, f"fields decisions read with no row in docs/genesys-fields.md: {missing}"
