"""Outbound and routing: campaigns, line distribution, settings, queue members."""

from __future__ import annotations

from wfm_publish_local.simulator.org import Org
from wfm_publish_local.simulator.wire import SimRequest, SimResponse, found, named, page


class OutboundApi:
    """Outbound campaigns, their line distribution, the outbound settings and routing queues' members."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def campaign_list(self, req: SimRequest) -> SimResponse:
        wanted = set(req.args("id"))
        name = (req.arg("name") or "").lower()
        campaigns = [
            c
            for c in self.org.topology.campaigns.values()
            if (not wanted or c.id in wanted) and name in (c.name or c.id).lower()
        ]
        return self.org.ok(page(req, [self.org.outbound.campaign(c) for c in campaigns], max_size=100))

    def campaign_get(self, req: SimRequest) -> SimResponse:
        campaign = found(self.org.topology.campaigns, req.params["campaignId"], "campaign")
        return self.org.ok(self.org.outbound.campaign(campaign))

    def line_distribution(self, req: SimRequest) -> SimResponse:
        campaign = found(self.org.topology.campaigns, req.params["campaignId"], "campaign")
        return self.org.ok(self.org.outbound.line_distribution(campaign, self.org.elapsed()))

    def outbound_settings(self, _req: SimRequest) -> SimResponse:
        return self.org.ok(self.org.outbound.settings())

    def queue_members(self, req: SimRequest) -> SimResponse:
        members = found(self.org.topology.queue_members, req.params["queueId"], "queue")
        entities = []
        for agent_id in members:
            agent = self.org.topology.agents[agent_id]
            user = named(agent)
            entities.append({**user, "user": user, "memberBy": "user", "joined": True, "ringNumber": 1})
        # QueueMemberEntityListing pages by links only: no total, pageCount or lastUri.
        return self.org.ok(page(req, entities, max_size=100, totals=False))
