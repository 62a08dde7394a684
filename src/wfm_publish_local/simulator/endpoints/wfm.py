"""Workforce management: business units, their weeks' schedules, agent schedules."""

from __future__ import annotations

import datetime as dt
import re
from functools import partial
from typing import Any

from wfm_publish_local.simulator import notifications as topics
from wfm_publish_local.simulator.org import Operation, Org, ScheduleState
from wfm_publish_local.simulator.scenario import WEEKDAYS, BusinessUnit
from wfm_publish_local.simulator.shifts import expand_shifts
from wfm_publish_local.simulator.telephony import BASE_AGE_SECONDS
from wfm_publish_local.simulator.wire import ApiError, SimRequest, SimResponse, found, named, not_found

WFM = "/api/v2/workforcemanagement/businessunits"
SCHEDULE = WFM + "/{buId}/weeks/{weekId}/schedules/{scheduleId}"
RECENT_WEEKS = 26
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Schedules:
    """Business units, their weeks' schedules and the agent-schedule query (synchronous, or
    Processing with a download announced on the asking user's topic)."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self._shift_cache: dict[str, dict[str, dict[str, Any]]] = {}

    def _bu(self, req: SimRequest) -> BusinessUnit:
        return found(self.org.topology.business_units, req.params["buId"], "business unit")

    @staticmethod
    def _bu_summary(bu: BusinessUnit) -> dict[str, Any]:
        return {
            **named(bu),
            # DivisionReference: id and selfUri only (no name).
            "division": {
                "id": bu.division.id,
                "selfUri": f"/api/v2/authorization/divisions/{bu.division.id}",
            },
            "selfUri": f"{WFM}/{bu.id}",
        }

    def bu_list(self, _req: SimRequest) -> SimResponse:
        return self.org.ok(
            {"entities": [self._bu_summary(b) for b in self.org.topology.business_units.values()]}
        )

    def bu_get(self, req: SimRequest) -> SimResponse:
        bu = self._bu(req)
        out = self._bu_summary(bu)
        if "settings" in req.expand():
            out["settings"] = {
                "startDayOfWeek": bu.start_day_of_week,
                "timeZone": bu.time_zone,
                "shortTermForecasting": {"defaultHistoryWeeks": 8},
                "scheduling": {"syncTimeOffProperties": [], "allowWorkPlanPerMinuteGranularity": False},
                "metadata": {"version": 1},
            }
        return self.org.ok(out)

    def _week(self, req: SimRequest, bu: BusinessUnit, allow_recent: bool) -> dt.date | None:
        """The week in the path; None means `recent` (only the schedule list takes it)."""
        raw = req.params["weekId"]
        if raw == "recent" and allow_recent:
            return None
        try:
            week = dt.date.fromisoformat(raw) if _DATE.match(raw) else None
        except ValueError:
            week = None
        if week is None:
            expected = "a yyyy-MM-dd date or 'recent'" if allow_recent else "a yyyy-MM-dd date"
            raise ApiError(
                400,
                "bad.request",
                f"weekId must be {expected}, got {raw!r}",
                error_code="invalid.value",
                field_name="weekId",
            )
        if WEEKDAYS[week.weekday()] != bu.start_day_of_week:
            raise ApiError(
                400,
                "bad.request",
                f"weekId {raw} is a {WEEKDAYS[week.weekday()]}; business unit {bu.id} starts weeks on "
                f"{bu.start_day_of_week}",
                error_code="invalid.week.start",
                field_name="weekId",
            )
        return week

    def schedule(self, req: SimRequest) -> tuple[BusinessUnit, str, ScheduleState]:
        bu = self._bu(req)
        week = self._week(req, bu, allow_recent=False)
        sid = req.params["scheduleId"]
        spec = self.org.topology.schedules.get(sid)
        if spec is None or spec.business_unit_id != bu.id or spec.week_id != week:
            raise not_found("schedule", sid)
        return bu, sid, self.org.schedules[sid]

    def _metadata(self, sid: str, st: ScheduleState) -> dict[str, Any]:
        m = self.org.moment(0)
        return {
            "version": st.version,
            "modifiedBy": {"id": st.modified_by},
            "dateModified": m.at(st.date_modified),
            "createdBy": {"id": self.org.topology.schedules[sid].created_by},
            "dateCreated": m.at(-BASE_AGE_SECONDS - 86400),
        }

    def schedule_summary(self, sid: str, st: ScheduleState) -> dict[str, Any]:
        spec = self.org.topology.schedules[sid]
        week = spec.week_id.isoformat()
        return {
            "id": sid,
            "weekDate": week,
            "weekCount": spec.week_count,
            "description": st.description,
            "published": st.published,
            "shortTermForecast": {  # BuShortTermForecastReference: no weekCount
                "id": spec.short_term_forecast_id or f"stf-{sid}",
                "weekDate": week,
            },
            "generationResults": {"failed": False, "runId": f"run-{sid}", "messageCount": 0},
            "metadata": self._metadata(sid, st),
            "selfUri": f"{WFM}/{spec.business_unit_id}/weeks/{week}/schedules/{sid}",
        }

    def schedule_list(self, req: SimRequest) -> SimResponse:
        bu = self._bu(req)
        week = self._week(req, bu, allow_recent=True)
        if week is None:
            today = self.org.scenario.today or dt.datetime.fromtimestamp(self.org.clock.now(), dt.UTC).date()
            window = dt.timedelta(weeks=RECENT_WEEKS)
            wanted = [s for s in self.org.scenario.schedules if abs(s.week_id - today) <= window]
        else:
            wanted = [s for s in self.org.scenario.schedules if s.week_id == week]
        entities = [
            self.schedule_summary(s.id, self.org.schedules[s.id])
            for s in wanted
            if s.business_unit_id == bu.id
        ]
        return self.org.ok({"entities": entities})

    def schedule_get(self, req: SimRequest) -> SimResponse:
        _, sid, st = self.schedule(req)
        out = self.schedule_summary(sid, st)
        expand = req.expand()
        if expand & {"managementUnits", "managementUnits.agents"}:
            spec = self.org.topology.schedules[sid]
            units = []
            for mu_id in self.org.topology.schedule_mu_ids(spec):
                unit: dict[str, Any] = {"managementUnit": {"id": mu_id}}
                if "managementUnits.agents" in expand:
                    agents = self.org.topology.management_units[mu_id].agents
                    unit["agents"] = [{"id": a} for a in agents]  # UserReference
                units.append(unit)
            out["managementUnits"] = units
        return self.org.ok(out)

    def _shifts(self, sid: str) -> dict[str, dict[str, Any]]:
        if sid not in self._shift_cache:
            self._shift_cache[sid] = expand_shifts(self.org.topology.schedules[sid], self.org.topology)
        return self._shift_cache[sid]

    def _agent_schedule(self, sid: str, st: ScheduleState, agent: str) -> dict[str, Any]:
        planned = self._shifts(sid).get(agent, {"shifts": [], "workPlan": None})
        override = st.agent_overrides.get(agent, {})
        out = {
            "user": {"id": agent},
            "shifts": override.get("shifts", planned["shifts"]),
            "fullDayTimeOffMarkers": override.get("fullDayTimeOffMarkers", []),
            "metadata": {"version": st.agent_versions.get(agent, 1)},
        }
        if planned["workPlan"] is not None:
            out["workPlan"] = planned["workPlan"]
        return out

    def _query_agents(self, req: SimRequest, sid: str) -> list[str]:
        body = req.json()
        pairs = self.org.topology.schedule_agents(self.org.topology.schedules[sid])
        mu = body.get("managementUnitId")
        if mu is not None:
            if mu not in {m for m, _ in pairs} and mu not in self.org.topology.schedule_mu_ids(
                self.org.topology.schedules[sid]
            ):
                raise ApiError(
                    400,
                    "bad.request",
                    f"Management unit {mu} is not part of schedule {sid}",
                    error_code="invalid.value",
                    field_name="managementUnitId",
                    entity_id=str(mu),
                )
            pairs = [(m, a) for m, a in pairs if m == mu]
        agents = list(dict.fromkeys(a for _, a in pairs))
        users = body.get("userIds")
        if users is not None:
            if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
                raise ApiError(400, "bad.request", "userIds must be a list of strings", field_name="userIds")
            agents = [a for a in agents if a in set(users)]
        if body.get("teamIds"):
            raise ApiError(
                400, "bad.request", "teamIds is not simulated: query by userIds", field_name="teamIds"
            )
        return agents

    def agent_query(self, req: SimRequest) -> SimResponse:
        bu, sid, st = self.schedule(req)
        agents = self._query_agents(req, sid)
        result = {
            "agentSchedules": [self._agent_schedule(sid, st, a) for a in agents],
            "businessUnitTimeZone": bu.time_zone,
        }
        large = self.org.scenario.download_agent_query_over
        if large is not None and len(agents) > large:
            # Complete at once, the result too large to pass directly: at its downloadUrl.
            op = Operation(
                self.org.new_id(),
                "AgentSchedulesQuery",
                sid,
                self.org.elapsed(),
                business_unit_id=bu.id,
                status="Complete",
                client_id=req.client_id,
                result=result,
            )
            op.download_url = f"{req.base_url}/__downloads/{op.id}"
            self.org.operations[op.id] = op
            return self.org.ok({"status": "Complete", "operationId": op.id, "downloadUrl": op.download_url})
        threshold = self.org.scenario.async_agent_query_over
        if threshold is None or len(agents) <= threshold:
            return self.org.ok({"status": "Complete", "result": result})
        t = self.org.elapsed()
        op = Operation(
            self.org.new_id(),
            "AgentSchedulesQuery",
            sid,
            t + self.org.scenario.async_query_seconds,
            client_id=req.client_id,
            business_unit_id=bu.id,
        )
        op.result = result
        op.download_url = f"{req.base_url}/__downloads/{op.id}"
        self.org.operations[op.id] = op
        self.org.at(op.done_at, partial(self._finish_query, op.id))
        return self.org.ok({"status": "Processing", "operationId": op.id})

    def _finish_query(self, op_id: str, t: float) -> None:
        op = self.org.operations[op_id]
        op.status = "Complete"
        self.org.log(t, "agentSchedulesQueryComplete", op_id)
        # Delivered on the asking user's topic (an OAuth client's own id here).
        body = {"operationId": op_id, "businessUnitId": op.business_unit_id, "downloadUrl": op.download_url}
        self.org.notify(topics.QUERY_RESULT_TOPIC, op.client_id or "client", body, t)

    def download(self, req: SimRequest) -> SimResponse:
        op = self.org.operations.get(req.params["operationId"])
        if op is None or op.status != "Complete" or op.result is None:
            raise not_found("download", req.params["operationId"])
        return self.org.ok(op.result)
