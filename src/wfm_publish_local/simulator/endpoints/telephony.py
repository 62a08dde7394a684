"""Telephony: edges, trunks, trunk base settings and sites."""

from __future__ import annotations

from wfm_publish_local.simulator.org import Org
from wfm_publish_local.simulator.wire import ApiError, SimRequest, SimResponse, found, page


class TelephonyApi:
    """Edges, trunks (and their metrics), trunk base settings and sites, as they are at the moment
    of the request."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def edge_list(self, req: SimRequest) -> SimResponse:
        """Edges, filtered by site or edge group. The org's Edges are all premises ones (a Cloud media
        site lists none), so `showCloudMedia` changes nothing here."""
        m = self.org.moment(self.org.elapsed())
        site, group = req.arg("site.id"), req.arg("edgeGroup.id")
        edges = [
            e
            for e in self.org.topology.edges.values()
            if (site is None or e.site_id == site) and (group is None or e.edge_group_id == group)
        ]
        return self.org.ok(page(req, [self.org.telephony.edge(e, m) for e in edges]))

    def edge_get(self, req: SimRequest) -> SimResponse:
        edge = found(self.org.topology.edges, req.params["edgeId"], "edge")
        return self.org.ok(self.org.telephony.edge(edge, self.org.moment(self.org.elapsed())))

    def trunk_list(self, req: SimRequest) -> SimResponse:
        m = self.org.moment(self.org.elapsed())
        edge, base, kind = req.arg("edge.id"), req.arg("trunkBase.id"), req.arg("trunkType")
        trunks = [
            x
            for x in self.org.topology.trunks.values()
            if (edge is None or x.edge_id == edge)
            and (base is None or x.trunk_base_id == base)
            and (kind is None or x.trunk_type == kind.upper())
        ]
        return self.org.ok(page(req, [self.org.telephony.trunk(x, m) for x in trunks]))

    def trunk_get(self, req: SimRequest) -> SimResponse:
        trunk = found(self.org.topology.trunks, req.params["trunkId"], "trunk")
        return self.org.ok(self.org.telephony.trunk(trunk, self.org.moment(self.org.elapsed())))

    def trunk_metrics(self, req: SimRequest) -> SimResponse:
        ids = req.args("trunkIds")
        if not ids:
            raise ApiError(
                400, "bad.request", "trunkIds is required", error_code="missing", field_name="trunkIds"
            )
        m = self.org.moment(self.org.elapsed())
        trunks = [found(self.org.topology.trunks, trunk_id, "trunk") for trunk_id in ids]
        return self.org.ok([self.org.telephony.trunk_metrics(trunk, m) for trunk in trunks])

    def trunk_base_get(self, req: SimRequest) -> SimResponse:
        base = found(self.org.topology.trunk_bases, req.params["trunkBaseId"], "trunk base settings")
        view = self.org.telephony.trunk_base(base, self.org.moment(self.org.elapsed()), self._permissions())
        return self.org.ok(view)

    def trunk_base_list(self, req: SimRequest) -> SimResponse:
        m = self.org.moment(self.org.elapsed())
        name = req.arg("name")
        bases = [
            self.org.telephony.trunk_base(b, m, self._permissions())
            for b in self.org.topology.trunk_bases.values()
            if name is None or (b.name or b.id) == name
        ]
        return self.org.ok(page(req, bases))

    def _permissions(self) -> frozenset[str]:
        return frozenset(self.org.scenario.credentials.permissions)

    def outbound_routes(self, req: SimRequest) -> SimResponse:
        site = found(self.org.topology.sites, req.params["siteId"], "site")
        routes = [self.org.telephony.outbound_route(site, r) for r in self.org.topology.site_routes(site)]
        return self.org.ok(page(req, routes))

    def site_list(self, req: SimRequest) -> SimResponse:
        name = req.arg("name")
        sites = [
            self.org.telephony.site(s.id)
            for s in self.org.topology.sites.values()
            if name is None or (s.name or s.id) == name
        ]
        return self.org.ok(page(req, sites))

    def site_get(self, req: SimRequest) -> SimResponse:
        site = found(self.org.topology.sites, req.params["siteId"], "site")
        return self.org.ok(self.org.telephony.site(site.id))
