"""`wfm-publish ops`: the operator's command line, against a deployed stack or the local one.

A deployed stack is found by name (`--stack`): its CloudFormation outputs name the table, the queues,
the dead-letter queues and the API. The local stack (`wfm-publish serve`) prints the same outputs in
its first JSON line; `--local FILE` reads them from that line (`wfm-publish serve > stack.json &`).

Nothing here decides anything: each command reads through the job store (indexes, never a scan) or
calls the core (cancel, the watchdog's move_on for a redrive, the notifier), as the functions do.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfm_publish.clock import SystemClock, iso
from wfm_publish.models import Job, JobMessage, JobStatus
from wfm_publish.queues import Queue, QueueSender, SqsTransport
from wfm_publish.secret_reader import SecretReader
from wfm_publish.store import DynamoJobStore
from wfm_publish.transitions import Transitions
from wfm_publish.watchdog import OVERDUE_AFTER, Redrive, redrive_letter

if TYPE_CHECKING:
    from wfm_publish.cancel import Cancelled
    from wfm_publish_local.stack import LocalStack

# The dead-letter queues by the name an operator types, and the stack output that holds each URL.
DLQ_OUTPUTS = {
    "validation": "ValidationDLQUrl",
    "conflict": "ConflictDLQUrl",
    "notifier": "NotifierDLQUrl",
    "announcer": "AnnouncerDLQUrl",
    "schedule": "ScheduleDLQUrl",
}
# Only the pipeline's letters carry a job message; the others point at stream records or a schedule.
REDRIVABLE = {"validation", "conflict"}
SCHEDULE_LOOKS = 2000  # `jobs --schedule`: index entries read per status, at most, to find its jobs
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # moto's


class OpsError(Exception):
    """What the operator asked cannot be done: the message says why (the CLI exits 1)."""


def failures() -> tuple[type[Exception], ...]:
    """What the CLI reports as one line (exit 1) rather than a traceback: a refusal, AWS saying no
    (no credentials, no such stack, access denied), the store's own errors, a configuration problem,
    the API unreachable (`check`)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from requests import RequestException

    from wfm_publish.errors import ConfigurationError, SecretUnavailable, StoreError

    return (
        OpsError,
        ClientError,
        BotoCoreError,
        StoreError,
        ConfigurationError,
        SecretUnavailable,
        RequestException,
    )


@dataclass(frozen=True)
class Target:
    """Where a stack's resources are: its outputs and parameters, and the AWS endpoint (local only)."""

    outputs: dict[str, str]
    parameters: dict[str, str] = field(default_factory=dict)
    endpoint_url: str | None = None
    region: str | None = None

    def output(self, name: str) -> str:
        value = self.outputs.get(name)
        if not value:
            raise OpsError(f"the stack has no {name} output (deploy the current template.yaml)")
        return value

    def client(self, service: str) -> Any:
        import boto3

        local = LOCAL_CREDENTIALS if self.endpoint_url else {}
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=self.region or ("us-east-1" if self.endpoint_url else None),
            **local,
        )

    @classmethod
    def from_stack(cls, name: str, region: str | None = None) -> Target:
        import boto3

        answer = (
            boto3.session.Session()
            .client("cloudformation", region_name=region)
            .describe_stacks(StackName=name)
        )
        stack = answer["Stacks"][0]
        outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        return cls(outputs, parameters, None, region)

    @classmethod
    def from_serve_line(cls, path: Path) -> Target:
        """The first line `wfm-publish serve` printed (its JSON), saved in `path`."""
        with path.open(encoding="utf-8") as handle:
            first = json.loads(handle.readline())
        return cls.from_local(first)

    @classmethod
    def from_local(cls, described: dict[str, Any]) -> Target:
        return cls(
            dict(described["outputs"]),
            dict(described.get("parameters", {})),
            described["aws"],
            described.get("region", "us-east-1"),
        )


def describe_local(stack: LocalStack, servicenow_url: str | None = None) -> dict[str, Any]:
    """The local stack as `--local` reads it: the template's outputs that name a resource (`!Ref`),
    the API's URL and the ServiceNow stand-in, beside the AWS endpoint."""
    from wfm_publish_local.template import load_yaml

    outputs: dict[str, str] = {}
    for name, spec in (load_yaml(stack.template_path).get("Outputs") or {}).items():
        value = spec.get("Value")
        if isinstance(value, dict) and isinstance(value.get("Ref"), str) and value["Ref"] in stack.refs:
            outputs[name] = stack.refs[value["Ref"]]
    outputs["ApiUrl"] = stack.api_url
    parameters = {"ServiceNowInstanceUrl": servicenow_url} if servicenow_url else {}
    return {"aws": stack.endpoint_url, "region": stack.region, "outputs": outputs, "parameters": parameters}


class Ops:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.clock = SystemClock()
        self.store = DynamoJobStore(target.client("dynamodb"), target.output("JobsTableName"))
        self.secrets = SecretReader(lambda: target.client("secretsmanager"))  # the functions' reader
        self._sqs: Any = None

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = self.target.client("sqs")
        return self._sqs

    def transitions(self) -> Transitions:
        urls = {
            Queue.VALIDATION: self.target.output("ValidationQueueUrl"),
            Queue.CONFLICT: self.target.output("ConflictQueueUrl"),
        }
        return Transitions(self.store, QueueSender(SqsTransport(self.sqs, urls), self.clock), self.clock)

    def job(self, publish_id: str) -> Job:
        job = self.store.get_job(publish_id)
        if job is None:
            raise OpsError(f"no publish {publish_id}")
        return job

    # --- jobs, show, stuck ----------------------------------------------------------------------

    def jobs(
        self,
        status: JobStatus | None = None,
        schedule: str | None = None,
        since: float = 0.0,
        most: int = 50,
    ) -> list[Job]:
        """Newest first, from the status index (queries per status; never a scan). `schedule` filters
        what the index returns: it reads on until `most` match, or SCHEDULE_LOOKS jobs per status."""
        found: list[Job] = []
        for each in [status] if status else list(JobStatus):
            matched = 0
            looks = most if schedule is None else SCHEDULE_LOOKS
            ids = self.store.iter_jobs_by_status(
                each, since, page=min(most, 100) if schedule is None else 100
            )
            for job_id in itertools.islice(ids, looks):
                job = self.store.get_job(job_id)  # keys only in the index: the job itself says the rest
                if job is not None and job.status is each and schedule in (None, job.schedule_id):
                    found.append(job)
                    matched += 1
                    if matched >= most:
                        break
        return sorted(found, key=lambda j: j.created_at, reverse=True)[:most]

    def stuck(self, over: float = OVERDUE_AFTER) -> list[tuple[Job, float]]:
        """Jobs not ended whose next step is overdue by more than `over` seconds (the due index)."""
        now = self.clock.now()
        out = []
        for job_id in self.store.overdue_jobs(now - over, 200):
            job = self.store.get_job(job_id)
            if job is not None and not job.status.terminal and (job.due_at or now) < now - over:
                out.append((job, now - (job.due_at or now)))
        return out

    def chart(self, publish_id: str) -> str:
        """The job's capacity chart (SVG), as GET /publishes/{publishId}/capacity?format=svg draws it."""
        from wfm_publish.answers import capacity
        from wfm_publish.api import ApiProblem

        try:
            drawn, _ = capacity(self.store.get_job(publish_id), publish_id, None, "svg")
        except ApiProblem as refused:
            raise OpsError(refused.body.message) from None
        return str(drawn)

    # --- cancel, notify ---------------------------------------------------------------------------

    def cancel(self, publish_id: str) -> Cancelled:
        """The core's cancel: the job, and whether it was cancelled before (nothing written then)."""
        from wfm_publish.cancel import cancel
        from wfm_publish.errors import CancelContended, CancelRefused, PublishNotFound

        try:
            return cancel(self.store, self.transitions(), publish_id, "cancelled by an operator")
        except (PublishNotFound, CancelRefused, CancelContended) as refused:
            raise OpsError(str(refused)) from None

    def notify(self, publish_id: str) -> str:
        """The notifier's delivery of the job's end, again: each record that has not heard it (the
        notifier skips records already told, and reads the record first)."""
        from wfm_publish.errors import NotifyContended
        from wfm_publish.notifier import Notifier
        from wfm_publish.servicenow import ServiceNowClient, credentials_from

        job = self.job(publish_id)
        if not job.status.terminal:
            raise OpsError(f"publish {publish_id} is {job.status.value}: it has not ended, nothing to tell")
        url = self.target.parameters.get("ServiceNowInstanceUrl")
        if not url:
            raise OpsError("the stack has no ServiceNowInstanceUrl parameter: callbacks are off")
        secret = self.target.output("ServiceNowCredentialsSecretArn")

        def credentials() -> Any:
            return credentials_from(self.secrets.text(secret, "ServiceNow credentials"))

        teller = f"ops:{uuid.uuid4().hex}"  # never the stream's: the two take turns (the notify# lease)
        notifier = Notifier(self.store, lambda: ServiceNowClient(url, credentials), self.clock, teller=teller)
        try:
            return notifier.notify(job).value
        except NotifyContended as contended:  # the stream's notifier is telling it this moment
            raise OpsError(str(contended)) from None

    # --- dead letters -------------------------------------------------------------------------------

    def dlq_url(self, queue: str) -> str:
        if queue not in DLQ_OUTPUTS:
            raise OpsError(f"no dead-letter queue {queue!r}; one of {', '.join(DLQ_OUTPUTS)}")
        return self.target.output(DLQ_OUTPUTS[queue])

    def _letters(self, url: str, hold: int) -> Iterator[dict[str, Any]]:
        """Every letter once, each kept out of sight for `hold` seconds while we look at it."""
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=hold,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return
            yield from batch

    def dlq_list(self, queue: str) -> list[dict[str, Any]]:
        """Each letter, seen without raising the receive count a person reads. SQS has no peek: seeing
        a letter is receiving it, which adds one to its ApproximateReceiveCount. So every receive of
        ours is noted in the table (`LookLedger`), and `receives` is SQS's count less our looks: the
        deliveries that failed (maxReceiveCount, before the letter came here) and the dead-letter
        sweep's looks, however often anyone lists. `looks` says how many listings saw it."""
        url = self.dlq_url(queue)
        seen = list(self._letters(url, 30))
        for letter in seen:  # put them back at once: a listing changes nothing a person reads
            self.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=letter["ReceiptHandle"], VisibilityTimeout=0
            )
        ledger = self.ledger(queue)
        rows = []
        for letter in seen:
            looks = ledger.looked(str(letter.get("MessageId")))
            rows.append(describe_letter(letter, looks))
        return rows

    def ledger(self, queue: str) -> LookLedger:
        return LookLedger(
            self.target.client("dynamodb"), self.target.output("JobsTableName"), queue, self.clock
        )

    def dlq_redrive(self, queue: str) -> list[dict[str, Any]]:
        """Each letter's job moves on through the one transition path (a fresh ticket), then the letter
        goes. A letter that is not a job message stays (for `purge`, once understood)."""
        if queue not in REDRIVABLE:
            raise OpsError(
                f"the {queue} DLQ holds no job messages: nothing to redrive"
                + (" (tell ServiceNow with `ops notify <publishId>`)" if queue == "notifier" else "")
            )
        url = self.dlq_url(queue)
        transitions = self.transitions()
        ledger = self.ledger(queue)
        done, kept = [], []
        for letter in self._letters(url, 60):
            message_id = str(letter.get("MessageId"))
            try:
                message = JobMessage.model_validate_json(letter.get("Body", ""))
            except ValueError:
                row = describe_letter(letter, ledger.looked(message_id))  # it stays: this look is noted
                row["outcome"] = "kept: not a job message"
                done.append(row)
                kept.append(letter["ReceiptHandle"])
                continue
            row = describe_letter(letter, ledger.looks(message_id) + 1)  # this receive is ours too
            outcome = redrive_letter(self.store, transitions, message, row["receives"])
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=letter["ReceiptHandle"])
            row["outcome"] = outcome.value + ("" if outcome is Redrive.MOVED else "; letter deleted")
            done.append(row)
        for handle in kept:  # visible again for the next look (after the loop, or it would see them twice)
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
        return done

    def dlq_count(self, queue: str) -> int:
        """How many letters the queue holds (SQS's approximate numbers: nothing is received)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.dlq_url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ).get("Attributes", {})
        return sum(
            int(attributes.get(name, "0"))
            for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        )

    def dlq_purge(self, queue: str) -> int:
        url = self.dlq_url(queue)
        deleted = 0
        for letter in self._letters(url, 60):
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=letter["ReceiptHandle"])
            deleted += 1
        return deleted

    # --- dry run ------------------------------------------------------------------------------------

    def check(
        self,
        schedule_id: str,
        *,
        hmac_secret: str | None = None,
        api_key: str | None = None,
        extra: dict[str, Any] | None = None,
        wait: float = 120.0,
    ) -> dict[str, Any]:
        """POST /publishes with dryRun true (signed as ServiceNow signs), then follow it to its end."""
        import requests

        from wfm_publish_local.client import SignedAuth

        api = self.target.output("ApiUrl").rstrip("/")
        auth = SignedAuth(self._signing_secret(hmac_secret), base_path=_path_of(api))
        headers = {"Idempotency-Key": f"ops-check-{uuid.uuid4()}"}
        key = api_key or self._api_key()
        if key:
            headers["x-api-key"] = key
        body = {"scheduleId": schedule_id, **(extra or {}), "dryRun": True}
        answer = requests.post(f"{api}/publishes", json=body, headers=headers, auth=auth, timeout=30)
        if answer.status_code != 202:
            raise OpsError(f"the API answered {answer.status_code}: {answer.text[:500]}")
        publish_id = str(answer.json()["publishId"])
        deadline = time.monotonic() + wait
        while True:
            view: dict[str, Any] = requests.get(
                f"{api}/publishes/{publish_id}", headers=headers, auth=auth, timeout=30
            ).json()
            if JobStatus(view["status"]).terminal or time.monotonic() >= deadline:
                return view
            time.sleep(0.5)

    def _signing_secret(self, explicit: str | None) -> str:
        from wfm_publish.signature import secrets_from
        from wfm_publish_local.client import local_hmac_secret

        if explicit or self.target.endpoint_url:
            return local_hmac_secret(explicit)
        arn = self.target.output("ApiSigningSecretArn")
        return secrets_from(self.secrets.text(arn, "request-signing"))[0]

    def _api_key(self) -> str | None:
        key_id = self.target.outputs.get("ApiKeyId")
        if self.target.endpoint_url or not key_id:
            return None  # the local API checks no key
        return str(self.target.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"])


def _path_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


class LookLedger:
    """How often `ops` itself received each letter of a DLQ: one `dlqlook#<queue>#<messageId>` item per
    letter in the jobs table (an atomic ADD, so two operators listing at once count right), kept as long
    as SQS may keep the letter (14 days at most)."""

    KEEP = 14 * 86400

    def __init__(self, client: Any, table: str, queue: str, clock: SystemClock) -> None:
        self._db = client
        self._table = table
        self._queue = queue
        self._clock = clock

    def _key(self, message_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"dlqlook#{self._queue}#{message_id}"}}

    def looks(self, message_id: str) -> int:
        """Our receives of the letter so far."""
        item = self._db.get_item(TableName=self._table, Key=self._key(message_id), ConsistentRead=True)
        return int(item.get("Item", {}).get("looks", {}).get("N", "0"))

    def looked(self, message_id: str) -> int:
        """Note one more receive of ours; our receives so far, this one included."""
        answer = self._db.update_item(
            TableName=self._table,
            Key=self._key(message_id),
            UpdateExpression="ADD looks :one SET expiresAt = :expires",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":expires": {"N": str(int(self._clock.now() + self.KEEP))},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["looks"]["N"])


def describe_letter(letter: dict[str, Any], looks: int = 0) -> dict[str, Any]:
    """What a person needs of a letter: whose job, which step, and how often it was received other
    than by `ops` (`looks`: our receives, the one that shows it included)."""
    body = letter.get("Body", "")
    counted = int(letter.get("Attributes", {}).get("ApproximateReceiveCount", "0"))
    row: dict[str, Any] = {
        "messageId": letter.get("MessageId"),
        "receives": max(0, counted - looks),
        "looks": looks,
        "sentAt": iso(int(letter.get("Attributes", {}).get("SentTimestamp", "0")) / 1000),
    }
    try:
        message = JobMessage.model_validate_json(body)
        return row | {"publishId": message.job_id, "step": message.step.value}
    except ValueError:
        pass
    try:  # a Lambda OnFailure record (notifier, announcer): it names stream records, not jobs
        info = json.loads(body).get("DDBStreamBatchInfo") or {}
        return row | {"stream": f"{info.get('startSequenceNumber')}..{info.get('endSequenceNumber')}"}
    except (ValueError, AttributeError):
        return row | {"body": body[:80]}


# --- what a person reads ---------------------------------------------------------------------------


def job_row(job: Job) -> dict[str, Any]:
    return {
        "publishId": job.job_id,
        "status": job.status.value,
        "scheduleId": job.schedule_id,
        "reason": job.reason_code.value if job.reason_code else "",
        "createdAt": iso(job.created_at),
        "updatedAt": iso(job.updated_at),
        "dryRun": bool(job.request.dry_run),
        "notified": job.notified_status is not None if job.request.callback else None,
    }


def job_detail(job: Job) -> dict[str, Any]:
    """What GET /publishes/{publishId} answers (the same view: callback, joined requests, timeline)."""
    from wfm_publish.answers import publish_view

    return in_time_order(publish_view(job, job.job_id))


def in_time_order(view: dict[str, Any]) -> dict[str, Any]:
    """The view with its timeline by time (ISO-8601 UTC text sorts as time; a tie keeps its order):
    entries are recorded by whichever function moved the job, not always in the order they happened."""
    timeline = view.get("timeline")
    if not timeline:
        return view
    return view | {"timeline": sorted(timeline, key=lambda entry: str(entry.get("at", "")))}


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table: one line per row, columns as wide as their longest value."""
    if not rows:
        return "(none)"
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """A value for a person: "-" when there is none (the same everywhere: tables and `show`)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render_detail(view: dict[str, Any]) -> str:
    """`ops show`: the job for a person, the timeline last."""
    view = in_time_order(view)
    attempts = view.get("attempts", {})
    lines = [
        f"publish   {view['publishId']}{'  (dry run)' if view.get('dryRun') else ''}",
        f"schedule  {view['scheduleId']}  business unit {_cell(view.get('businessUnitId'))}"
        f"  week {_cell(view.get('weekId'))}",
        f"status    {view['status']}  {view.get('reasonCode') or ''}".rstrip(),
    ]
    if view.get("detail"):
        lines.append(f"detail    {view['detail']}")
    lines.append(
        f"attempts  publish {attempts.get('publish', 0)}, readiness checks "
        f"{attempts.get('readinessChecks', 0)}, conflict retries {attempts.get('conflictRetries', 0)}"
    )
    lines.append(
        f"times     created {view['createdAt']}, updated {view['updatedAt']}, deadline {view['deadlineAt']}"
    )
    scope = view.get("telephonyScope")
    if scope:
        lines.append(
            f"scope     {scope['agents']} agents, {len(scope['campaigns'])} campaign(s), "
            f"{len(scope['sites'])} site(s): {', '.join(s['name'] or s['pool'] for s in scope['sites'])}"
        )
    if view.get("waitingOn"):
        lines.append(f"waiting   on {', '.join(view['waitingOn'])}")
    capacity = view.get("capacity")
    if capacity:
        lines.append(f"capacity  {capacity.get('summary', capacity)}")
    for warning in view.get("warnings", []):
        lines.append(f"warning   {warning}")
    for label, cb in [("callback", view.get("callback"))] + [
        (f"joined {j['joinedAt']}", j.get("callback")) for j in view.get("joined") or []
    ]:
        told = f"  notified: {_cell(cb['notified'])}" if cb else ""
        lines.append(f"{label:<9} {cb['table'] + '/' + cb['sysId'] if cb else '(no callback)'}{told}")
    lines.append("timeline")
    for entry in view.get("timeline", []):
        detail = entry.get("detail")
        extra = "  " + json.dumps(detail, separators=(",", ":"), sort_keys=True) if detail else ""
        again = f" (x{entry['times']}, the last at {entry['until']})" if entry.get("until") else ""
        lines.append(f"  {entry['at']}  {entry['event']}{again}{extra}")
    return "\n".join(lines)
