"""The telephony scope of a schedule, and readiness read within it (scope.py, readiness.py)."""

from __future__ import annotations

from typing import Any

from tests.support.virtual import edge_update
from wfm_publish import readiness, scope
from wfm_publish.clock import VirtualClock
from wfm_publish.genesys import Edge, Trunk
from wfm_publish.genesys_wire import MaxCalls
from wfm_publish.models import ScopePool, TelephonyScope
from wfm_publish.observations import Observer
from wfm_publish.readiness import Observation, judge, observe_edge, observe_trunk, roots
from wfm_publish_local.simulator import GenesysSimulator, parse_scenario
from wfm_publish_local.virtual import MemoryJobStore, VirtualRun

from .test_validation_modes import T0, scenario


def org(name: str, **changes: Any) -> VirtualRun:
    clock = VirtualClock(T0)
    return VirtualRun(GenesysSimulator(parse_scenario(scenario(name, **changes)), clock), clock)


def compute(run: VirtualRun, bu: str, schedule_id: str, week: str = "2023-10-23") -> TelephonyScope:
    return scope.compute(run.genesys, Observer(None, run.clock.now()), bu, week, schedule_id)


def test_the_demo_schedule_dials_through_one_site() -> None:
    found = compute(org("demo"), "bu-demo", "sched-demo")
    assert found.agents == 6
    assert found.management_units == ["mu-demo"]
    assert [(c.id, c.dialing_mode, c.pool, c.agents) for c in found.campaigns] == [
        ("campaign-demo", "predictive", "site:site-demo", 6)
    ]
    (pool,) = found.pools
    assert (pool.name, pool.edges, pool.trunks, pool.trunk_bases) == (
        "London",
        ["edge-demo-1"],
        ["trunk-demo-1", "trunk-demo-2"],
        ["trunkbase-demo"],
    )


def test_only_the_schedules_own_campaigns_count() -> None:
    run = org("unrelated-edge-change")
    calm = compute(run, "bu-calm", "sched-calm")
    assert [c.id for c in calm.campaigns] == ["campaign-calm"]
    assert [p.edges for p in calm.pools] == [["edge-calm"]]  # not edge-other, not edge-lab
    other = compute(run, "bu-calm", "sched-other")
    assert [p.edges for p in other.pools] == [["edge-other"]]


def test_campaigns_that_are_off_are_out_of_scope_and_an_empty_scope_is_ready() -> None:
    run = org("large")
    # large.yaml: campaign c dials for business unit c's queue at site ((c - 1) mod 5) + 1; every 7th is off.
    first = compute(run, "gen-bu-001", "gen-sched-001")
    assert [c.id for c in first.campaigns] == ["gen-campaign-001"]
    assert [p.key for p in first.pools] == ["site:gen-site-01"]
    assert first.pools[0].edges == ["gen-edge-01-1", "gen-edge-01-2"]
    assert len(first.pools[0].trunks) == 4
    seventh = compute(run, "gen-bu-007", "gen-sched-007")
    assert seventh.campaigns == []
    assert seventh.pools == []
    seen = readiness.check(
        run.genesys, Observer(None, run.clock.now()), seventh, [], now=T0, settle_window=30
    )
    assert seen.ready
    assert seen.reads == 0


def test_an_agentless_campaign_on_the_schedules_queue_is_in_scope() -> None:
    run = org("capacity-exceeded")
    found = compute(run, "bu-cap", "sched-cap")
    assert [(c.id, c.dialing_mode, c.outbound_line_count) for c in found.campaigns] == [
        ("campaign-sales", "predictive", None),
        ("campaign-retention", "power", None),
        ("campaign-reminders", "agentless", 4),
    ]


def test_entity_refs_name_every_entity_of_the_scope() -> None:
    found = compute(org("demo"), "bu-demo", "sched-demo")
    assert scope.entity_refs(found) == {
        "edge-demo-1": "edge:edge-demo-1",
        "trunk-demo-1": "trunk:trunk-demo-1",
        "trunk-demo-2": "trunk:trunk-demo-2",
        "trunkbase-demo": "trunkBase:trunkbase-demo",
    }


# --- reading readiness within the scope --------------------------------------------------------------------


def test_trunks_down_with_their_edge_are_not_rechecked_on_their_own() -> None:
    edge_down = observe_edge(Edge.model_validate({"id": "e1", "statusCode": "INITIALIZING"}))
    with_it = Observation("trunk", "t1", None, ("not connected",), None, edge="e1")
    alone = Observation("trunk", "t2", None, ("not connected",), None, edge="e2")
    assert roots([alone, with_it, edge_down]) == ("edge:e1", "trunk:t2")
    assert judge([alone, with_it, edge_down], T0, 30).blocked_by == ("edge:e1", "trunk:t2")


def test_a_trunk_an_admin_switched_off_neither_blocks_nor_counts() -> None:
    # Trunk.inService "comes from the trunk_enabled property of the referenced trunk base".
    trunk = observe_trunk(
        Trunk.model_validate(
            {
                "id": "t",
                "state": "active",
                "inService": False,
                "trunkBase": {"id": "b"},
                "connectedStatus": {"connected": False},
            }
        )
    )
    assert not trunk.watched and not trunk.carries
    assert judge([trunk], T0, 30).ready
    snapshot = readiness.PoolSnapshot(
        "site:s", None, (trunk, Observation("trunkBase", "b", None, (), None, max_calls=MaxCalls.limited(30)))
    )
    assert snapshot.trunk_lines().state == "none"


def test_a_trunk_that_just_reconnected_is_inside_the_settle_window() -> None:
    trunk = Trunk.model_validate(
        {
            "id": "t",
            "state": "active",
            "inService": True,
            "dateModified": "2023-11-01T00:00:00Z",
            "connectedStatus": {"connected": True, "connectedStateTime": "2023-11-14T22:13:10Z"},
        }
    )
    seen = judge([observe_trunk(trunk)], T0, 30)  # T0 = 2023-11-14T22:13:20Z
    assert not seen.ready
    assert seen.settles_at == T0 - 10 + 30


def test_blockers_are_rechecked_first_and_the_whole_scope_only_once_they_clear() -> None:
    update = edge_update(60)
    run = org("demo", events=[update])
    found = compute(run, "bu-demo", "sched-demo")

    def look(blocked_by: list[str]) -> readiness.Readiness:
        return readiness.check(
            run.genesys,
            Observer(None, run.clock.now()),
            found,
            blocked_by,
            now=run.clock.now(),
            settle_window=2,
        )

    full = look([])
    assert not full.ready
    assert full.blocked_by == ("edge:edge-demo-1",)  # its trunks are down with it: not listed
    assert full.reads == 3  # edges of the site, trunks of its one Edge, the trunk base
    run.clock.advance(30)
    cheap = look(list(full.blocked_by))
    assert (cheap.ready, cheap.reads, cheap.rechecked) == (False, 1, ("edge:edge-demo-1",))
    run.clock.advance(31)  # the update ended at 60; 61 is inside the settle window
    settling = look(list(cheap.blocked_by))
    assert settling.rechecked == ("edge:edge-demo-1",)
    assert settling.reads == 1 + 3
    assert not settling.ready
    assert settling.settles_at == T0 + 60 + 2
    assert settling.blocked_by == ()
    run.clock.advance(2)
    assert look([]).ready


def test_a_job_never_takes_its_own_old_look_for_news() -> None:
    store = MemoryJobStore()
    store.put_observation("edge:e1", T0 - 3, {"kind": "edge", "id": "e1", "problems": ["statusCode NEW"]}, 60)
    reads: list[str] = []

    def read() -> dict[str, Any]:
        reads.append("e1")
        return {"kind": "edge", "id": "e1", "problems": []}

    # Another job looked 3 s ago: shared.
    assert Observer(store, T0).get("edge:e1", 5, read)["problems"] == ["statusCode NEW"]
    # This job's own previous check was that look: read again.
    assert Observer(store, T0).get("edge:e1", 5, read, newer_than=T0 - 3)["problems"] == []
    # Too old for anyone.
    assert Observer(store, T0 + 10).get("edge:e1", 5, read)["problems"] == []
    assert len(reads) == 2


def test_the_pool_name_and_ids_come_from_the_full_read() -> None:
    pool = ScopePool(key="site:x", kind="site", id="x")
    snapshot = readiness.PoolSnapshot(
        "site:x",
        "Leeds",
        (
            Observation("edge", "e", None, (), None),
            Observation("trunk", "t", None, (), None, trunk_base="b", edge="e"),
            Observation("trunkBase", "b", None, (), None, max_calls=MaxCalls.limited(20)),
        ),
    )
    filled = readiness.scope_pool_from(pool, snapshot)
    assert (filled.name, filled.edges, filled.trunks, filled.trunk_bases) == ("Leeds", ["e"], ["t"], ["b"])
    assert snapshot.trunk_lines().limit == 20
