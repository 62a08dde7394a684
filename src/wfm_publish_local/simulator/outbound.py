"""Outbound campaigns, org settings and line distribution derived from the trunks' max concurrent calls."""

from __future__ import annotations

import math
from typing import Any

from wfm_publish_local.simulator.scenario import Campaign, OutboundSettings
from wfm_publish_local.simulator.telephony import TelephonyView
from wfm_publish_local.simulator.topology import Topology
from wfm_publish_local.simulator.wire import named

# What the simulated dialer takes an unlimited trunk (Max Calls 0, or no value) to carry, when the
# scenario does not set its site's maxOutboundLineCount.
UNLIMITED_TRUNK_LINES = 100


class OutboundView:
    def __init__(self, topology: Topology, telephony: TelephonyView, settings: OutboundSettings) -> None:
        self.topo = topology
        self.telephony = telephony
        self.org = settings

    def campaign(self, c: Campaign) -> dict[str, Any]:
        queue = self.topo.queues[c.queue_id]
        out: dict[str, Any] = {
            **named(c),
            "dialingMode": c.dialing_mode,
            "campaignStatus": c.campaign_status,
            "queue": named(queue),
            "contactList": {"id": f"contactlist-{c.id}"},
            "abandonRate": 5.0,
            "priority": 5,
            "version": c.version,
            "selfUri": f"/api/v2/outbound/campaigns/{c.id}",
        }
        if c.site_id is not None:
            out["site"] = {"id": c.site_id}
        else:
            out["edgeGroup"] = {"id": c.edge_group_id}
        if c.outbound_line_count is not None:
            out["outboundLineCount"] = c.outbound_line_count
        if c.max_calls_per_agent is not None:
            out["maxCallsPerAgent"] = c.max_calls_per_agent
        return out

    def settings(self) -> dict[str, Any]:
        return {
            "id": "outbound-settings",
            "name": "Outbound settings",
            "maxCallsPerAgent": self.org.max_calls_per_agent,
            "maxLineUtilization": self.org.max_line_utilization,
            "abandonSeconds": self.org.abandon_seconds,
            "complianceAbandonRateDenominator": self.org.compliance_abandon_rate_denominator,
            "version": 1,
            "selfUri": "/api/v2/outbound/settings",
        }

    def _pool(self, c: Campaign) -> list[Campaign]:
        """Campaigns dialing through the same site or edge group share its lines."""
        return [
            other
            for other in self.topo.campaigns.values()
            if (other.site_id, other.edge_group_id) == (c.site_id, c.edge_group_id)
            and other.campaign_status == "on"
        ]

    def max_lines(self, c: Campaign, t: float) -> int:
        """The site's maxOutboundLineCount if the scenario sets it, else the sum of Max Calls over the
        connected EXTERNAL trunks the campaign dials through (an unlimited one counts
        UNLIMITED_TRUNK_LINES)."""
        site = self.topo.sites.get(c.site_id or "")
        if site is not None and site.max_outbound_line_count is not None:
            return site.max_outbound_line_count
        total = 0
        for trunk in self.topo.campaign_trunks(c):
            if self.telephony.trunk_connected(trunk, t):
                calls = self.topo.trunk_bases[trunk.trunk_base_id].max_concurrent_calls
                total += calls if calls else UNLIMITED_TRUNK_LINES
        return total

    def line_distribution(self, c: Campaign, t: float) -> dict[str, Any]:
        max_lines = self.max_lines(c, t)
        usable = math.floor(max_lines * self.org.max_line_utilization)
        pool = self._pool(c)
        # Agentless campaigns hold their outboundLineCount; the rest share what is left.
        reserved = sum(x.outbound_line_count or 0 for x in pool if x.dialing_mode == "agentless")
        available = max(0, usable - reserved)
        sharing = [x for x in pool if x.dialing_mode != "agentless"] or [c]
        share, extra = divmod(available, len(sharing))
        # CampaignOutboundLinesDistribution: the asked campaign, agentless reservations, and the lines
        # the others share dynamically (equal weights here).
        return {
            "campaign": {"id": c.id, "selfUri": f"/api/v2/outbound/campaigns/{c.id}"},
            "maxOutboundLineCount": max_lines,
            "maxLineUtilization": self.org.max_line_utilization,
            "availableOutboundLines": available,
            "reservedLines": reserved,
            "campaignsWithReservedLines": [
                {"campaign": _ref(x), "linesReserved": x.outbound_line_count or 0}
                for x in pool
                if x.dialing_mode == "agentless"
            ],
            "campaignsWithDynamicallyAllocatedLines": [
                {
                    "campaign": _ref(x),
                    "campaignWeight": 1,
                    "linesAssigned": share + (1 if index < extra else 0),
                    "legacyWeight": False,
                }
                for index, x in enumerate(sharing)
            ],
        }


def _ref(c: Campaign) -> dict[str, Any]:
    return {**named(c), "selfUri": f"/api/v2/outbound/campaigns/{c.id}"}
