"""Every field the client's wire models read is an official field of the official type.

docs/genesys-models.json holds the SDK's models (`make genesys-models`); each wire model here is
paired with the official model it reads, and every alias is checked against it, recursively.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from wfm_publish import genesys_wire as w
from wfm_publish.models import GenesysErrorBody, Lenient
from wfm_publish_local.genesys_models import shapes

# wire model -> the official model it reads (where it is read at the top of an answer or a list).
OFFICIAL: dict[type[BaseModel], str] = {
    w.Ref: "BusinessUnitListItem",  # business_units(); nested Refs are checked where they sit
    w.Schedule: "BuScheduleMetadata",
    w.UpdateOperation: "BuAsyncScheduleResponse",
    w.AgentSchedule: "BuAgentScheduleQueryResponse",
    w.ScheduleNotice: "WfmBuScheduleTopicBuScheduleNotification",
    w.QueryResultNotice: "WfmBuScheduleQueryResultTopicBuScheduleSearchResultNotification",
    w.Edge: "Edge",
    w.Trunk: "Trunk",
    w.TrunkCalls: "TrunkMetricsCalls",
    w.TrunkBaseSettings: "TrunkBase",
    w.Site: "Site",
    w.OutboundRoute: "OutboundRouteBase",
    w.Campaign: "Campaign",
    w.LineDistribution: "CampaignOutboundLinesDistribution",
    w.OutboundSettings: "OutboundSettings",
    GenesysErrorBody: "ErrorBody",  # every failing call's body (wfm_publish.models)
}
SCALAR = {str: {"str", "datetime", "date"}, int: {"int"}, float: {"float", "int"}, bool: {"bool"}}


def _inner(annotation: Any) -> Any:
    """The type a field holds, without Optional."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def problems(model: type[BaseModel], official: str, where: str) -> list[str]:
    fields = shapes().models[official]
    out = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        alias = info.alias or name
        if alias not in fields:
            out.append(f"{where}.{alias}: not a field of {official}")
            continue
        out.extend(_compatible(_inner(info.annotation), fields[alias], f"{where}.{alias}"))
    return out


def _compatible(kind: Any, official: str, where: str) -> list[str]:
    origin = typing.get_origin(kind)
    if origin is list:
        if not official.startswith("list["):
            return [f"{where}: a list here, {official} there"]
        return _compatible(typing.get_args(kind)[0], official[5:-1], f"{where}[]")
    if origin is dict or kind is Any:
        return (
            []
            if not official.startswith(("list[",)) and official not in SCALAR_NAMES
            else [f"{where}: {official}"]
        )
    if inspect.isclass(kind) and issubclass(kind, BaseModel):
        if official not in shapes().models:
            return [f"{where}: a model here, {official} there"]
        return problems(kind, official, where)
    if official not in SCALAR.get(kind, set()):
        return [f"{where}: {kind} here, {official} there"]
    return []


SCALAR_NAMES = {"str", "int", "float", "bool", "datetime", "date"}


@pytest.mark.parametrize("model", list(OFFICIAL), ids=lambda m: m.__name__)
def test_every_alias_is_an_official_field_of_the_official_type(model: type[BaseModel]) -> None:
    found = problems(model, OFFICIAL[model], model.__name__)
    assert not found, "; ".join(found)


def test_every_wire_model_is_checked_directly_or_inside_another() -> None:
    reached: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        reached.add(model)
        for info in model.model_fields.values():
            kind = _inner(info.annotation)
            kind = typing.get_args(kind)[0] if typing.get_origin(kind) is list else kind
            if inspect.isclass(kind) and issubclass(kind, BaseModel) and kind not in reached:
                walk(kind)

    for model in OFFICIAL:
        walk(model)
    declared = {
        m
        for m in vars(w).values()
        if inspect.isclass(m) and issubclass(m, Lenient) and m.__module__ == w.__name__
    }
    assert declared - reached == set()


@pytest.mark.parametrize(
    ("model", "official", "invented"),
    [
        (w.SoftwareStatus, "DomainEdgeSoftwareUpdateDto", "dateUpgradeStarted"),
        (w.LineDistribution, "CampaignOutboundLinesDistribution", "campaigns"),
        (w.Activity, "BuAgentScheduleActivity", "countsAsPaidTime"),
    ],
)
def test_the_fields_the_client_used_to_invent_are_gone(
    model: type[BaseModel], official: str, invented: str
) -> None:
    assert invented not in {info.alias or n for n, info in model.model_fields.items()}
    assert invented not in shapes().models[official]


def test_the_wire_models_need_no_http_stack() -> None:
    source = inspect.getsource(w)
    assert "import requests" not in source and "from requests" not in source
