"""The telephony a schedule depends on: computed once per job, stored on it, reused by every check.

    schedule's agents (its management units) -> the queues they are members of
      -> outbound campaigns `on` dialing for those queues
      -> each campaign's site or edge group -> its Edges -> their EXTERNAL trunks -> trunk bases

This mirrors how a telephony change reaches a publish: only a change on one of these entities can
make Genesys answer 409 "telephony provisioning in progress" for this schedule, so only these are
read while the job waits. The campaign list, queue members and pool reads go through the shared
observations (`observations.Observer`), so a burst of schedules on the same campaigns reads them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wfm_publish import readiness
from wfm_publish.errors import GenesysNotFound
from wfm_publish.genesys_wire import MAX_CONCURRENT_CALLS_KEY, Campaign
from wfm_publish.models import ScopeCampaign, ScopePool, TelephonyScope
from wfm_publish.observations import OBSERVATION_MAX_AGE, REFERENCE_MAX_AGE, Observer

if TYPE_CHECKING:
    from wfm_publish.ports import ScopeReader

# Genesys's default "On Queue Work" activity code is "0"; breaks, meals, meetings, training and
# off-queue work have other codes. Only on-queue time needs outbound lines (capacity.py).
ON_QUEUE_ACTIVITY_CODES = frozenset({"0"})


@dataclass(frozen=True)
class TelephonyOptions:
    """How telephony is read and judged (the settle window lives in `waiting.Timing`)."""

    max_calls_key: str = MAX_CONCURRENT_CALLS_KEY  # the trunk-base property holding Max Calls
    # Concurrent calls one premises Edge carries: Genesys publishes it per Edge model (Resource Center,
    # "Concurrent call capacity for Edge models"), not in the API. 0: not known, no Edge bound applied.
    edge_call_capacity: int = 0
    on_queue_codes: frozenset[str] = ON_QUEUE_ACTIVITY_CODES  # activity codes that put an agent on queue
    observation_max_age: float = OBSERVATION_MAX_AGE  # share telephony reads this long
    reference_max_age: float = REFERENCE_MAX_AGE  # share campaigns / members / settings


def pool_of(campaign: Campaign) -> tuple[str, str] | None:
    """("site", id) or ("edgeGroup", id): where the campaign's calls go out."""
    if campaign.site is not None:
        return "site", campaign.site.id
    if campaign.edge_group is not None:
        return "edgeGroup", campaign.edge_group.id
    return None


def campaigns(reader: ScopeReader, observer: Observer, max_age: float) -> list[Campaign]:
    docs = observer.get(
        "campaigns", max_age, lambda: [c.model_dump(mode="json", by_alias=True) for c in reader.campaigns()]
    )
    return [Campaign.model_validate(d) for d in docs]


def queue_members(reader: ScopeReader, observer: Observer, queue_id: str, max_age: float) -> list[str]:
    def read() -> list[str]:
        try:
            return reader.queue_members(queue_id)
        except GenesysNotFound:  # deleted since the campaign list was read: nobody dials through it
            return []

    members: list[str] = observer.get(f"queue:{queue_id}", max_age, read)
    return members


def site_of(
    reader: ScopeReader, observer: Observer, kind: str, pool_id: str, max_age: float
) -> tuple[str | None, str | None]:
    """A site's `mediaModel` ("Media model for the site": Premises or Cloud) and name; (None, None) for
    an edge group. Reference data, shared between jobs for minutes: a site keeps its media model."""
    if kind != "site":
        return None, None

    def read() -> dict[str, Any]:
        try:
            site = reader.site(pool_id)
        except GenesysNotFound:
            return {}
        return {"mediaModel": site.media_model, "name": site.name}

    found = observer.get(f"siteMedia:{pool_id}", max_age, read)
    media, name = found.get("mediaModel"), found.get("name")
    return (str(media) if media else None), (str(name) if name else None)


def compute(
    reader: ScopeReader,
    observer: Observer,
    business_unit_id: str,
    week_id: str,
    schedule_id: str,
    options: TelephonyOptions | None = None,
) -> TelephonyScope:
    """The schedule's telephony scope. Costs 1 schedule read + (shared) campaigns, members and pools."""
    options = options or TelephonyOptions()
    schedule = reader.schedule(business_unit_id, week_id, schedule_id, with_agents=True)
    agents = set(schedule.agent_ids)
    dialing = [
        c
        for c in campaigns(reader, observer, options.reference_max_age)
        if (c.campaign_status or "").lower() == "on" and c.queue is not None and pool_of(c) is not None
    ]
    on_queue: dict[str, int] = {}
    for queue_id in dict.fromkeys(c.queue.id for c in dialing if c.queue):
        members = queue_members(reader, observer, queue_id, options.reference_max_age)
        on_queue[queue_id] = len(agents.intersection(members))
    in_scope: list[ScopeCampaign] = []
    pools: dict[str, ScopePool] = {}
    for c in dialing:
        where = pool_of(c)
        if c.queue is None or where is None or not on_queue.get(c.queue.id):
            continue
        kind, pool_id = where
        key = f"{kind}:{pool_id}"
        if key not in pools:
            media, name = site_of(reader, observer, kind, pool_id, options.reference_max_age)
            pools[key] = ScopePool(key=key, kind=kind, id=pool_id, name=name, media_model=media)
        in_scope.append(
            ScopeCampaign(
                id=c.id,
                name=c.name,
                dialing_mode=(c.dialing_mode or "predictive").lower(),
                queue_id=c.queue.id,
                pool=key,
                max_calls_per_agent=c.max_calls_per_agent,
                outbound_line_count=c.outbound_line_count,
                agents=on_queue[c.queue.id],
            )
        )
    filled = [
        readiness.scope_pool_from(
            pool,
            readiness.pool_snapshot(
                reader,
                observer,
                pool.kind,
                pool.id,
                max_age=options.observation_max_age,
                max_calls_key=options.max_calls_key,
                media=pool.media_model,
            ),
        )
        for pool in pools.values()
    ]
    return TelephonyScope(
        computed_at=observer.now,
        agents=len(agents),
        management_units=[mu.management_unit.id for mu in schedule.management_units],
        week_count=schedule.week_count or 1,
        campaigns=in_scope,
        pools=filled,
    )


def describe(scope: TelephonyScope) -> dict[str, Any]:
    """What the timeline says about a freshly computed scope."""
    brief = scope.brief()
    if not scope.campaigns:
        brief["note"] = "no outbound campaign `on` serves this schedule's agents: no telephony to wait for"
    return brief


def entity_refs(scope: TelephonyScope) -> dict[str, str]:
    """id -> ref ("edge:<id>") for every entity in the scope (a 409 names an entity by id only)."""
    refs: dict[str, str] = {}
    for pool in scope.pools:
        refs.update({e: f"edge:{e}" for e in pool.edges})
        refs.update({t: f"trunk:{t}" for t in pool.trunks})
        refs.update({b: f"trunkBase:{b}" for b in pool.trunk_bases})
    return refs


def entities(scope: TelephonyScope) -> list[str]:
    """The Edges and trunks of the scope: the entities whose telephony events wake the job."""
    return list(dict.fromkeys(e for pool in scope.pools for e in (*pool.edges, *pool.trunks)))
