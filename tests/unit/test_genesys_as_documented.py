"""Every field a decision reads means what Genesys' own description says (docs/genesys-fields.md).

Each test pins one field against the official word, through the real client and the simulator playing
the kind of org that shows it. Where the simulator and the client were once written from the same
guess, these are the cases a real org disagreed with.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.virtual import raw_scenario, start
from wfm_publish import wake
from wfm_publish.genesys_events import topic_of
from wfm_publish.genesys_wire import Edge
from wfm_publish.models import Job, JobStatus, ReasonCode
from wfm_publish.readiness import observe_edge

WAITED = "telephony not settled"


def published_at_first_look(job: Job) -> None:
    assert job.status is JobStatus.PUBLISHED, (job.reason_code, job.detail)
    events = [e.event for e in job.timeline]
    assert WAITED not in events and "waiting after conflict" not in events
    assert job.publish_attempts == 1


def quiet(name: str, **changes: Any) -> dict[str, Any]:
    return raw_scenario(name, events=[], **changes)


# --- 1. Trunk.inService is the admin's switch; Trunk.enabled is its Edge's --------------------------------


def test_a_trunk_an_admin_switched_off_does_not_hold_the_publish() -> None:
    """SDK Trunk.inService: "True if this trunk is in-service. This comes from the trunk_enabled
    property of the referenced trunk base". A backup trunk switched off on purpose is no change."""
    run, job_id = start(quiet("byoc-premises"))
    job = run.run(job_id)
    published_at_first_look(job)
    settled = next(e for e in job.timeline if e.event == "telephony settled")
    assert "trunk Backup carrier (LON-EDGE-01): switched off by an admin" in settled.detail["unavailable"]


def test_a_trunk_whose_edge_is_out_of_service_is_counted_as_unavailable() -> None:
    """SDK Trunk.enabled: "True if the Edge used by this trunk is in-service". Its lines do not
    count, and the report says which trunk and why, instead of dropping it silently."""
    raw = quiet("byoc-premises")
    raw["trunkBases"][0]["maxConcurrentCalls"] = 10  # every SIP trunk Limited: the trunks bound
    run, job_id = start(raw)
    job = run.run(job_id)
    published_at_first_look(job)
    assert job.capacity is not None
    [pool] = job.capacity.pools
    # Three SIP trunks of 10, one on the Edge out of service: 20 lines, not 30.
    assert (pool.trunk_max_concurrent_calls, pool.bound) == (20, "trunks")
    assert any("Carrier SIP (LON-EDGE-02): its Edge is out of service" in n for n in job.capacity.notes)


# --- 2. Max Calls 0 is unlimited ------------------------------------------------------------------------


def test_max_calls_zero_is_unlimited_and_the_line_distribution_bounds_the_lines() -> None:
    """ "Setting Max Calls to 0 (zero) will configure the trunk to accept an unlimited number of calls"
    (Resource Center, Configure maximum call settings). Not zero lines: strict mode publishes."""
    run, job_id = start(quiet("byoc-premises"))
    job = run.run(job_id)
    published_at_first_look(job)
    assert job.capacity is not None and job.capacity.ok
    [pool] = job.capacity.pools
    assert (pool.trunk_max_calls, pool.bound, pool.lines_available) == ("unlimited", "lineDistribution", 54)
    assert "bound: the line distribution's maxOutboundLineCount" in job.capacity.summary


def test_the_edges_capacity_bounds_unlimited_premises_trunks_when_it_is_configured() -> None:
    raw = quiet("byoc-premises")
    raw["sites"][0].pop("maxOutboundLineCount")  # the simulated dialer then counts 100 per unlimited trunk
    run, job_id = start(raw, telephony={"edge_call_capacity": 10})
    job = run.run(job_id)
    published_at_first_look(job)
    assert job.capacity is not None
    [pool] = job.capacity.pools
    # Two Edges carry calls (the third is out of service): 2 x 10 = 20 lines, 18 of them usable (x 0.9).
    assert (pool.bound, pool.edge_capacity, pool.lines_available) == ("edges", 20, 18)


# --- 3. Only an Edge update running now holds a publish --------------------------------------------------


@pytest.mark.parametrize("status", ["FAILED", "EXPIRED", "ABORTED", "EXCEPTION", "DELETE", "SUCCEEDED"])
def test_an_edge_update_that_ended_days_ago_holds_nothing(status: str) -> None:
    """Edge.softwareStatus "appears only if a software upgrade was recently initiated": an update
    that ended last week is still shown, and is not a change in progress."""
    raw = quiet("byoc-premises")
    raw["edges"][0] |= {"softwareStatus": status, "softwareUpdateAt": -3 * 86400}
    run, job_id = start(raw)
    published_at_first_look(run.run(job_id))


def test_an_update_running_now_holds_and_one_scheduled_for_later_does_not() -> None:
    now = 1_700_000_000.0
    running = Edge.model_validate(
        {
            "id": "e",
            "statusCode": "ACTIVE",
            "onlineStatus": "ONLINE",
            "softwareStatus": {"status": "IN_PROGRESS"},
        }
    )
    later = running.model_copy(
        update={
            "software_status": running.software_status.model_copy(  # type: ignore[union-attr]
                update={"status": "INIT", "execute_start_time": "2023-11-15T22:13:20Z"}
            )
        }
    )
    assert observe_edge(running, now).problems == ("softwareStatus IN_PROGRESS",)
    assert observe_edge(later, now).problems == ()


def test_an_edge_update_ended_inside_the_settle_window_is_waited_out() -> None:
    raw = quiet("byoc-premises", settleWindowSeconds=30)
    raw["edges"][0] |= {"softwareStatus": "SUCCEEDED", "softwareUpdateAt": -10}  # ended 10 s before
    run, job_id = start(raw, {"scheduleId": "sched-demo", "validationMode": "strict"})
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts == 1


# --- 4. Cloud media: no premises Edge, readiness from the site's routes and trunks ------------------------


def test_a_cloud_site_is_read_through_its_outbound_routes_and_a_trunk_change_there_is_waited_for() -> None:
    """On BYOC Cloud there may be no premises Edge: an empty Edge list is not "settled". The site's
    outbound routes name its EXTERNAL trunk bases; their trunks are what the publish depends on."""
    raw = raw_scenario("byoc-cloud")
    raw["events"] = [
        {
            "type": "telephonyChange",
            "kind": "trunkDisconnected",
            "entityId": "trunk-dublin-1",
            "start": 0,
            "end": 60,
        }
    ]
    run, job_id = start(raw)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.publish_attempts == 1  # never refused: the trunk's reconnection was waited for
    assert run.simulator.stats()["conflictsSent"]["telephony"] == 0
    scope = next(e for e in job.timeline if e.event == "telephony scope")
    assert scope.detail["readsFrom"] == [
        "site:site-dublin: a Cloud media site; its outbound routes' trunks and trunk bases "
        "(2 trunks, 0 cloud media Edges)"
    ]
    waited = next(e for e in job.timeline if e.event == WAITED)
    assert waited.detail["blockers"] == ["trunk Primary BYOC Carrier: not connected"]


def test_edges_are_listed_with_cloud_media_shown() -> None:
    run, job_id = start(quiet("byoc-cloud"))
    run.run(job_id)
    listed = [
        q for m, p, q, _ in run.simulator.requests if m == "GET" and p.endswith("/telephony/providers/edges")
    ]
    assert listed and all(q.get("showCloudMedia") == ["true"] for q in listed)


# --- 5. A 409 is decided from reads: tests/unit/test_conflicts.py (every case with bodies that say nothing)


# --- 6. The EventBridge envelope -----------------------------------------------------------------------


def test_the_topic_is_read_from_the_detail_never_from_the_detail_type_template() -> None:
    """detail-type is the topic's template (GenesysCloudBlueprints' sample events): it names no entity."""
    template_only = {"detail-type": "v2.telephony.providers.edges.{id}", "detail": {"eventBody": {"id": "e"}}}
    assert topic_of(template_only) == ""
    assert wake.telephony_entity(template_only) is None
    event = {
        "detail-type": "v2.telephony.providers.edges.{id}",
        "time": "2023-11-14T22:13:20Z",
        "detail": {
            "topicName": "v2.telephony.providers.edges.edge-1",
            "timestamp": "2023-11-14T22:13:20.435Z",
        },
    }
    assert wake.telephony_entity(event) == ("v2.telephony.providers.edges.edge-1", "edge-1")
    assert wake.event_time(event, 0.0) == pytest.approx(1_700_000_000.435)


# --- 7. An agent-schedule query answered Complete with a downloadUrl ----------------------------------------


def test_a_large_agent_schedule_result_is_downloaded_and_the_capacity_check_uses_it() -> None:
    """BuAsyncAgentSchedulesQueryResponse.downloadUrl: "The URL from which to download the result if it
    is too large to pass directly"."""
    run, job_id = start(quiet("byoc-premises", downloadAgentQueryOver=0))
    job = run.run(job_id)
    published_at_first_look(job)
    assert job.capacity is not None and job.capacity.pools[0].peak_needed == 18  # the shifts were read
    assert any(p.startswith("/__downloads/") for m, p, q, _ in run.simulator.requests if m == "GET")


# --- 8. Trunk base settings: no expand, and a Max Calls that cannot be read --------------------------------


def test_trunk_base_settings_are_read_without_the_unofficial_expand() -> None:
    run, job_id = start(quiet("byoc-premises"))
    run.run(job_id)
    reads = [q for m, p, q, _ in run.simulator.requests if "/trunkbasesettings/" in p]
    assert reads and all("expand" not in q for q in reads)


def test_a_hidden_managed_max_calls_is_reported_not_taken_for_zero_lines() -> None:
    """ "Managed properties will not be returned unless the user is assigned the internal:trunk:edit
    permission": on Genesys Cloud Voice the job says it could not read the setting, and why."""
    run, job_id = start(quiet("genesys-cloud-voice"))
    job = run.run(job_id)
    published_at_first_look(job)
    assert job.capacity is not None
    [pool] = job.capacity.pools
    assert (pool.trunk_max_calls, pool.bound) == ("unreadable", "lineDistribution")
    [note] = [n for n in job.capacity.notes if "Max Calls not readable" in n]
    assert "internal:trunk:edit" in note


def test_with_internal_trunk_edit_a_managed_max_calls_is_read() -> None:
    raw = quiet("genesys-cloud-voice")
    raw["credentials"] = {"permissions": ["internal:trunk:edit"]}
    raw["trunkBases"][0]["maxConcurrentCalls"] = 30
    run, job_id = start(raw)
    job = run.run(job_id)
    assert job.capacity is not None
    [pool] = job.capacity.pools
    assert (pool.trunk_max_calls, pool.trunk_max_concurrent_calls, pool.bound) == ("limited", 30, "trunks")


# --- every org kind: the demo's request, nothing changing ------------------------------------------------


@pytest.mark.parametrize("name", ["byoc-premises", "byoc-cloud", "genesys-cloud-voice", "hybrid"])
def test_the_demo_request_publishes_at_its_first_look_on_every_org_kind(name: str) -> None:
    run, job_id = start(raw_scenario(name))
    job = run.run(job_id)
    published_at_first_look(job)
    assert job.reason_code is ReasonCode.PUBLISHED
    assert job.capacity is not None and job.capacity.ok
    assert all(p.bound in {"lineDistribution", "trunks", "edges"} for p in job.capacity.pools)
    assert "bound: " in job.capacity.summary


# --- when the notifications do not come ---------------------------------------------------------------------


def test_a_strict_publish_whose_query_result_never_comes_checks_capacity_in_parts() -> None:
    """An integration that delivers no query result topic: the large query is taken as unanswered after
    10 minutes and asked in parts; the job checks capacity and publishes instead of backing off forever."""
    raw = quiet("byoc-premises", asyncAgentQueryOver=3, notifications={"queryResults": False})
    run, job_id = start(raw)
    job = run.run(job_id)
    assert job.status is JobStatus.PUBLISHED
    assert job.capacity is not None and job.capacity.pools[0].peak_needed == 18
    assert job.updated_at - job.created_at > 600  # it waited the one lost query out, once
