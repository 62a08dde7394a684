"""Genesys as the pipeline's steps use it: its own module, as pipeline, validation and conflicts share it."""

from __future__ import annotations

from typing import Protocol

from wfm_publish.capacity import CapacityReader
from wfm_publish.genesys_wire import Schedule, UpdateOperation


class PipelineGenesys(CapacityReader, Protocol):
    """What the steps call on Genesys: the readers of scope, readiness and capacity (CapacityReader
    holds them all), locating and publishing the schedule, and the calls made (the timeline's reads).
    `genesys.GenesysClient` is the one adapter (services.py wires it)."""

    @property
    def calls_made(self) -> int: ...
    def resolve_schedule(self, schedule_id: str) -> tuple[str, str]: ...
    def publish(self, bu_id: str, week_id: str, schedule: Schedule) -> UpdateOperation: ...
