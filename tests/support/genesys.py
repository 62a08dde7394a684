"""The Genesys contract tests' org: the simulator served over HTTP, and the real client in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.virtual import demo
from wfm_publish.clock import VirtualClock
from wfm_publish.genesys import Credentials, GenesysClient
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.simulator.notifications import DeliveredQueryBook
from wfm_publish_local.simulator.server import SimulatorServer

# Genesys' error body: every key it may carry.
ERROR_FIELDS = {
    "message",
    "code",
    "status",
    "entityId",
    "entityName",
    "messageWithParams",
    "messageParams",
    "contextId",
    "details",
    "errors",
}

# A schedule as the week's schedule list carries it (shared/GENESYS_API.md).
SCHEDULE_LIST_FIELDS = {
    "id",
    "weekDate",
    "weekCount",
    "description",
    "published",
    "shortTermForecast",
    "generationResults",
    "metadata",
}

# What a trunk (TrunkEntityListing's Trunk) carries at least, as the client reads it.
TRUNK_FIELDS = {
    "state",
    "trunkType",
    "edge",
    "edgeGroup",
    "trunkBase",
    "inService",
    "enabled",
    "connectedStatus",
    "optionsStatus",
    "registersStatus",
    "ipStatus",
    "version",
    "dateModified",
}


def contract_org(**changes: Any) -> dict[str, Any]:
    """The demo org, plus an agentless campaign on its site and a preview campaign on its edge group
    (so every campaign shape is served)."""
    raw = demo()
    raw["campaigns"] += [
        {
            "id": "campaign-agentless",
            "name": "Reminders",
            "dialingMode": "agentless",
            "campaignStatus": "on",
            "queueId": "queue-outbound",
            "siteId": "site-demo",
            "outboundLineCount": 5,
        },
        {
            "id": "campaign-preview",
            "dialingMode": "preview",
            "campaignStatus": "off",
            "queueId": "queue-outbound",
            "edgeGroupId": "edgegroup-demo",
        },
    ]
    # The Edge's last software update ended an hour before: its softwareStatus node is served.
    raw["edges"][0] |= {"softwareStatus": "SUCCEEDED", "softwareUpdateAt": -3600}
    # A BYOC Cloud site (no premises Edge: a cloud trunk reached through its outbound route) and a
    # Genesys Cloud Voice one (a managed trunk base), so every telephony shape is served.
    raw["sites"] += [
        {"id": "site-cloud", "name": "Cloud", "kind": "byocCloud"},
        {"id": "site-voice", "name": "Voice", "kind": "genesysCloudVoice"},
    ]
    raw["trunkBases"] += [
        {"id": "trunkbase-carrier", "name": "BYOC Carrier", "maxConcurrentCalls": 0},
        {"id": "trunkbase-voice", "name": "Genesys Cloud Voice", "managed": True},
    ]
    raw["trunks"] += [
        {"id": "trunk-cloud-1", "siteId": "site-cloud", "trunkBaseId": "trunkbase-carrier"},
        {"id": "trunk-voice-1", "siteId": "site-voice", "trunkBaseId": "trunkbase-voice"},
    ]
    # Only the other writer who edits before the first update: no telephony change in the way.
    raw["events"] = [e for e in raw["events"] if e["type"] == "writerEdit"]
    raw.update(changes)
    return raw


class Org:
    """The simulator served over HTTP on a virtual clock, and the real client in front of it."""

    def __init__(self, server: SimulatorServer, simulator: GenesysSimulator, clock: VirtualClock) -> None:
        self.server = server
        self.sim = simulator
        self.clock = clock
        self.client = self.new_client()

    def new_client(self, **kwargs: Any) -> GenesysClient:
        creds = self.sim.scenario.credentials
        # The org's notifications reach the client's pending queries as the genesys_events function's do.
        queries = DeliveredQueryBook(self.sim.notifier, self.sim.pump, self.clock.now)
        return GenesysClient(
            self.server.url,
            lambda: Credentials(creds.client_id, creds.client_secret),
            monotonic=self.clock.now,
            wall_clock=self.clock.now,
            **({"queries": queries} | kwargs),
        )

    def raw(self, route: str, ids: dict[str, str] | None = None, **params: str) -> dict[str, Any]:
        """The JSON answer as served, fetched through the client's own authenticated transport."""
        return self.client._call("GET", route, ids, params=params or None)

    def calls(self) -> dict[str, int]:
        calls: dict[str, int] = self.sim.stats()["calls"]
        return calls


@contextmanager
def serving(raw: dict[str, Any]) -> Iterator[Org]:
    """The scenario served over HTTP for the block's length."""
    clock = VirtualClock()
    simulator = GenesysSimulator(parse_scenario(raw), clock)
    with SimulatorServer(simulator) as server:
        yield Org(server, simulator, clock)
