"""Publishing a schedule: the three-step update and the 409 of each conflict."""

from __future__ import annotations

import gzip
import json
import zlib
from functools import partial
from typing import Any

from wfm_publish_local.simulator import notifications as topics
from wfm_publish_local.simulator.endpoints.wfm import Schedules
from wfm_publish_local.simulator.org import Operation, Org, ScheduleState, Upload
from wfm_publish_local.simulator.wire import ApiError, SimRequest, SimResponse, not_found


class Publishing:
    """The three-step schedule update: an upload URL, the gzip upload, the update that answers
    Processing and ends later (applied, Error or Canceled), refused with the 409 of each conflict."""

    def __init__(self, org: Org, schedules: Schedules) -> None:
        self.org = org
        self.schedules = schedules

    def upload_url(self, req: SimRequest) -> SimResponse:
        _, sid, st = self.schedules.schedule(req)
        size = req.json().get("contentLengthBytes")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ApiError(
                400,
                "bad.request",
                "contentLengthBytes must be a positive integer: the size of the gzip body",
                error_code="invalid.value",
                field_name="contentLengthBytes",
            )
        st.uploads_requested += 1
        if st.uploads_requested == 1:
            # The other writer gets in between the caller's read and its update.
            for ev in self.org.triggers.pop(sid, []):
                self.org.writer_edit(ev, self.org.elapsed())
        key = self.org.new_id()
        self.org.uploads[key] = Upload(key, sid, size)
        return self.org.ok(
            {
                "uploadKey": key,
                "url": f"{req.base_url}/__uploads/{key}",
                "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            }
        )

    def put_upload(self, req: SimRequest) -> SimResponse:
        up = self.org.uploads.get(req.params["uploadKey"])
        if up is None:
            raise not_found("upload", req.params["uploadKey"])
        if up.consumed:
            raise _bad_upload("This upload was already used by an update; ask for a new upload URL")
        if req.headers.get("content-encoding", "").lower() != "gzip" or not req.headers.get(
            "content-type", ""
        ).lower().startswith("application/json"):
            raise _bad_upload("The upload must carry the headers given with the URL (JSON, gzip)")
        if len(req.body) != up.content_length:
            raise _bad_upload(
                f"The upload is {len(req.body)} bytes but contentLengthBytes said {up.content_length}"
            )
        try:
            payload = json.loads(gzip.decompress(req.body))
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise _bad_upload(f"The upload is not gzip-compressed JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise _bad_upload("The upload must be a JSON object")
        metadata = payload.get("metadata")
        version = metadata.get("version") if isinstance(metadata, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            raise _bad_upload("metadata.version is required (the version that was read)", "metadata.version")
        if "published" in payload and not isinstance(payload["published"], bool):
            raise _bad_upload("published must be a boolean", "published")
        up.payload = payload
        return SimResponse(200, {"ININ-Correlation-Id": self.org.new_id()}, b"")

    def update(self, req: SimRequest) -> SimResponse:
        _, sid, st = self.schedules.schedule(req)
        key = req.json().get("uploadKey")
        up = self.org.uploads.get(key) if isinstance(key, str) else None
        if up is None or up.schedule_id != sid:
            raise ApiError(
                400,
                "bad.request",
                f"Unknown uploadKey for schedule {sid}: {key!r}",
                error_code="wfm.schedule.upload.not.found",
                field_name="uploadKey",
            )
        if up.payload is None or up.consumed:
            reason = "nothing was uploaded to it" if up.payload is None else "it was already used"
            raise ApiError(
                400,
                "bad.request",
                f"The uploadKey cannot be used: {reason}",
                error_code="wfm.schedule.upload.invalid",
                field_name="uploadKey",
            )
        t = self.org.elapsed()
        self._check_conflicts(sid, st, up.payload, t)
        fail = self.org.fail_left.get(sid, 0) > 0
        if fail:
            self.org.fail_left[sid] -= 1
        cancel = not fail and self.org.cancel_left.get(sid, 0) > 0
        if cancel:
            self.org.cancel_left[sid] -= 1
        duration = self.org.durations.get(sid, self.org.scenario.publish_duration_seconds)
        op = Operation(
            self.org.new_id(),
            "Update",
            sid,
            t + duration,
            business_unit_id=self.org.topology.schedules[sid].business_unit_id,
            client_id=req.client_id,
            payload=up.payload,
        )
        op.fail, op.cancel = fail, cancel
        up.consumed = True
        self.org.operations[op.id] = op
        self.org.active_update[sid] = op.id
        self.org.at(op.done_at, partial(self._finish_update, op.id))
        self.org.log(t, "updateAccepted", f"{sid} operation {op.id} (version {st.version})")
        return self.org.ok({"status": "Processing", "operationId": op.id})

    def _check_conflicts(self, sid: str, st: ScheduleState, payload: dict[str, Any], t: float) -> None:
        provided = payload["metadata"]["version"]
        if provided != st.version:
            self._conflict("stale", t, f"{sid}: version {provided} sent, {st.version} current")
            raise ApiError(
                409,
                "conflict",
                f"The schedule was modified by someone else: version {provided} was provided but the "
                f"current version is {st.version}",
                error_code="wfm.schedule.version.mismatch",
                entity_id=sid,
                entity_name=st.description or sid,
                params={"providedVersion": str(provided), "currentVersion": str(st.version)},
                message_with_params=(
                    "The schedule was modified by someone else: version {providedVersion} was provided but "
                    "the current version is {currentVersion}"
                ),
            )
        change = self.org.telephony.blocking_change(sid, t, self.org.scenario.settle_window_seconds)
        if change is not None:
            name = self.org.topology.entity_name(change.entity_id)
            self._conflict("telephony", t, f"{sid}: {change.kind} on {change.entity_id}")
            raise ApiError(
                409,
                "conflict",
                f"Telephony provisioning in progress on {name} affects agents in this schedule",
                error_code="wfm.schedule.telephony.provisioning.in.progress",
                entity_id=change.entity_id,
                entity_name=name,
                params={"entityName": name},
                message_with_params=(
                    "Telephony provisioning in progress on {entityName} affects agents in this schedule"
                ),
            )
        running = self.org.active_update.get(sid)
        if running is not None:
            self._conflict("inProgress", t, f"{sid}: operation {running} still processing")
            raise ApiError(
                409,
                "conflict",
                "Another update of this schedule is still processing",
                error_code="wfm.schedule.update.in.progress",
                entity_id=sid,
                entity_name=st.description or sid,
                params={"operationId": running},
                message_with_params="Another update of this schedule is still processing ({operationId})",
            )

    def _conflict(self, kind: str, t: float, detail: str) -> None:
        self.org.conflicts[kind] += 1
        self.org.log(t, f"conflict.{kind}", detail)
        if self.org.scenario.conflict_bodies == "bare":
            raise ApiError(409, "conflict", "Conflict")

    def _finish_update(self, op_id: str, t: float) -> None:
        op = self.org.operations[op_id]
        sid = op.schedule_id
        if self.org.active_update.get(sid) == op_id:
            del self.org.active_update[sid]
        if op.fail or op.cancel:
            op.status = "Error" if op.fail else "Canceled"
            self.org.failed[sid] += 1
            self.org.log(t, "updateFailed", f"{sid} operation {op_id} ended {op.status}; nothing applied")
            # As users report, an Error carries nothing but the operation id.
            body: dict[str, Any] = {"status": op.status, "operationId": op_id}
            if op.status == "Canceled":
                body["eventType"] = "Update"
            self.org.notify(topics.SCHEDULES_TOPIC, op.business_unit_id, body, t)
            return
        st = self.org.schedules[sid]
        if op.payload.get("published") is True:
            st.published = True  # a published schedule cannot be un-published, only superseded
        if isinstance(op.payload.get("description"), str):
            st.description = op.payload["description"]
        for entry in op.payload.get("agentSchedules") or []:
            user = _user_of(entry)
            if user:
                st.agent_overrides[user] = entry
                st.agent_versions[user] = st.agent_versions.get(user, 1) + 1
        st.version += 1
        st.date_modified = t
        st.modified_by = op.client_id
        op.status = "Complete"
        self.org.applied[sid] += 1
        self.org.log(
            t, "updateApplied", f"{sid} operation {op_id}: version {st.version}, published {st.published}"
        )
        body = {
            "status": "Complete",
            "operationId": op_id,
            "eventType": "Update",
            "result": self._topic_schedule(sid, st),
        }
        self.org.notify(topics.SCHEDULES_TOPIC, op.business_unit_id, body, t)

    def _topic_schedule(self, sid: str, st: ScheduleState) -> dict[str, Any]:
        """WfmBuScheduleTopicBuScheduleMetadata: the schedule as the update left it."""
        summary = self.schedules.schedule_summary(sid, st)
        out = {k: summary[k] for k in ("id", "weekCount", "description", "published", "metadata")}
        out["weekDate"] = summary["weekDate"] + "T00:00:00Z"  # a datetime on this topic
        out["metadata"] = {
            k: v for k, v in summary["metadata"].items() if k in {"version", "dateModified", "modifiedBy"}
        }
        return out


def _bad_upload(message: str, field_name: str | None = None) -> ApiError:
    return ApiError(
        400, "bad.request", message, error_code="wfm.schedule.upload.invalid", field_name=field_name
    )


def _user_of(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    user = entry.get("userId") or (entry.get("user") or {}).get("id")
    return user if isinstance(user, str) else None
