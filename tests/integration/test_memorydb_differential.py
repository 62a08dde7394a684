"""The in-memory DynamoDB the virtual runs use (wfm_publish_local.memorydb) held to moto, over HTTP: every
store operation made against both, the same calls in the same order; each must answer the same (the
same value, or the same refusal from the same failed condition) and leave the same items behind.

The fault harness (`make chaos`) runs the real store over the in-memory table: what it finds holds only
as far as that table evaluates the store's conditions and updates as DynamoDB does. First a script that
takes every operation down each of its condition's branches, then Hypothesis' stateful testing over
random sequences of them (bounded and derandomized, so `make test` runs the same examples each time).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.conftest import ROOT
from wfm_publish import store as store_module
from wfm_publish.errors import IdempotencyTaken, JobAlreadyExists, JobEnded, StaleJob
from wfm_publish.genesys_wire import OperationOutcome
from wfm_publish.models import Callback, Job, JobStatus, Joiner, PublishRequest, ReasonCode
from wfm_publish.store import DynamoJobStore
from wfm_publish.weekly import DynamoRunLog, RunProgress
from wfm_publish_local.memorydb import MemoryDynamoDB
from wfm_publish_local.template import Template
from wfm_publish_local.virtual import _indexes

pytestmark = pytest.mark.integration

NOW = 1_700_000_000.0


class Twin:
    """One store over moto and one over the in-memory table, called alike."""

    def __init__(self, url: str) -> None:
        spec = Template.load(ROOT / "template.yaml").table
        self.client = boto3.client("dynamodb", endpoint_url=url)
        self.name = f"twin-{uuid.uuid4().hex[:8]}"
        self.client.create_table(
            TableName=self.name,
            KeySchema=[{"AttributeName": k.attribute_name, "KeyType": k.key_type} for k in spec.key_schema],
            AttributeDefinitions=[
                {"AttributeName": n, "AttributeType": t} for n, t in spec.attribute_definitions.items()
            ],
            BillingMode="PAY_PER_REQUEST",
            GlobalSecondaryIndexes=spec.global_indexes,
        )
        self.memory = MemoryDynamoDB({self.name: _indexes()})
        self.stores = (DynamoJobStore(self.client, self.name), DynamoJobStore(self.memory, self.name))  # type: ignore[arg-type]
        self.runs = (DynamoRunLog(self.client, self.name), DynamoRunLog(self.memory, self.name))  # type: ignore[arg-type]
        self.calls = 0

    def drop(self) -> None:
        self.client.delete_table(TableName=self.name)

    def call(self, what: str, operation: Callable[[DynamoJobStore], Any]) -> Any:
        """`operation` on both stores (each write with the same write id): the same answer, the same items."""
        self.calls += 1
        answers = []
        for store in self.stores:
            original = store_module.write_id
            store_module.write_id = lambda: f"write-{self.calls}"  # type: ignore[assignment]
            try:
                answers.append(("answered", _plain(operation(store))))
            except (StaleJob, JobAlreadyExists, JobEnded, IdempotencyTaken) as refused:
                answers.append(("refused", _refusal(refused)))
            finally:
                store_module.write_id = original
        assert answers[0] == answers[1], f"{what}: moto {answers[0]}, memory {answers[1]}"
        self.same_items(what)
        return answers[0][1]

    def run_log(self, what: str, operation: Callable[[DynamoRunLog], Any]) -> Any:
        answers = [_plain(operation(log)) for log in self.runs]
        assert answers[0] == answers[1], f"{what}: moto {answers[0]}, memory {answers[1]}"
        self.same_items(what)
        return answers[0]

    def same_items(self, what: str) -> None:
        assert self.moto_items() == _items(self.memory.tables.get(self.name, {}).values()), what

    def moto_items(self) -> dict[str, dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            page = self.client.scan(TableName=self.name, **({"ExclusiveStartKey": start} if start else {}))
            items += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return _items(items)


def _items(items: Any) -> dict[str, dict[str, Any]]:
    return {str(item["pk"]["S"]): {k: _value(v) for k, v in item.items()} for item in items}


def _value(value: dict[str, Any]) -> Any:
    """An attribute value as DynamoDB means it: numbers by value, sets unordered, maps and lists inside."""
    ((kind, inner),) = value.items()
    if kind == "N":
        return ("N", Decimal(inner).normalize())
    if kind in {"SS", "NS"}:
        return (kind, frozenset(inner))
    if kind == "M":
        return ("M", {k: _value(v) for k, v in inner.items()})
    if kind == "L":
        return ("L", [_value(v) for v in inner])
    return (kind, inner)


def _plain(answer: Any) -> Any:
    if isinstance(answer, Job):
        return answer.model_dump(mode="json")
    if dataclasses.is_dataclass(answer) and not isinstance(answer, type):
        return dataclasses.asdict(answer)
    if isinstance(answer, list | tuple):
        return [_plain(a) for a in answer]
    return answer


def _refusal(refused: Exception) -> Any:
    if isinstance(refused, StaleJob):
        return ("StaleJob", _plain(refused.current))
    if isinstance(refused, IdempotencyTaken):
        return ("IdempotencyTaken", _plain(refused.record))
    return (type(refused).__name__, str(refused))


def a_job(job_id: str, schedule_id: str = "sched-1", status: JobStatus = JobStatus.QUEUED) -> Job:
    return Job(
        job_id=job_id,
        schedule_id=schedule_id,
        request=PublishRequest(schedule_id=schedule_id),
        status=status,
        ticket="t0",
        created_at=NOW,
        updated_at=NOW,
        deadline_at=NOW + 3600,
        due_at=NOW + 5,
    )


def ended(job: Job, status: JobStatus = JobStatus.PUBLISHED) -> Job:
    return job.model_copy(
        update={"status": status, "reason_code": ReasonCode.PUBLISHED, "ticket": "t-end", "due_at": None}
    )


@pytest.fixture
def twin(moto_url: str) -> Iterator[Twin]:
    made = Twin(moto_url)
    yield made
    made.drop()


# --- every operation, down each branch of its condition ------------------------------------------------


def test_jobs_and_joiners_answer_alike(twin: Twin) -> None:
    job = a_job("job-1")
    twin.call("create", lambda s: s.create_job(job))
    twin.call("create again", lambda s: s.create_job(job))  # JobAlreadyExists
    twin.call("get", lambda s: s.get_job("job-1"))
    twin.call("get a job that is not there", lambda s: s.get_job("job-none"))
    moved = twin.call("save", lambda s: s.save_job(job.model_copy(update={"status": JobStatus.WAITING})))
    assert moved["version"] == 1
    twin.call("save from a stale version", lambda s: s.save_job(job))  # StaleJob naming the current job
    current = twin.call("read back", lambda s: s.get_job("job-1"))
    joiner = Joiner(key="k-join", callback=Callback(table="incident", sys_id="b" * 32), at=NOW)
    twin.call("join", lambda s: s.add_joiner("job-1", joiner))
    twin.call("join again (its own write)", lambda s: s.add_joiner("job-1", joiner))
    twin.call("join a job that is not there", lambda s: s.add_joiner("job-none", joiner))  # JobEnded
    twin.call("note a join", lambda s: s.note_join("k-join", "job-1", NOW + 60, "hash-1"))
    twin.call("read a join", lambda s: s.joined("k-join"))
    twin.call("read no join", lambda s: s.joined("k-none"))
    done = ended(Job.model_validate(current))
    twin.call("end it", lambda s: s.save_job(done))
    other = Joiner(key="k-late", at=NOW)
    twin.call("join an ended job", lambda s: s.add_joiner("job-1", other))  # JobEnded
    twin.call("the ended job keeps its joiners", lambda s: s.get_job("job-1"))


def test_the_indexes_answer_alike(twin: Twin) -> None:
    for i, due in enumerate([NOW + 30, NOW - 600, NOW - 60, NOW - 6000, NOW - 600]):
        job = a_job(f"job-{i}").model_copy(update={"due_at": due, "created_at": NOW + i})
        twin.call(f"create {i}", lambda s, job=job: s.create_job(job))
    twin.call(
        "end job-1", lambda s: s.save_job(ended(a_job("job-1").model_copy(update={"created_at": NOW + 1})))
    )
    twin.call("overdue, oldest first", lambda s: s.overdue_jobs(NOW - 30, 10))
    twin.call("overdue, at most 2", lambda s: s.overdue_jobs(NOW, 2))
    twin.call("queued, newest first", lambda s: s.jobs_by_status(JobStatus.QUEUED))
    twin.call("queued since", lambda s: s.jobs_by_status(JobStatus.QUEUED, since=NOW + 2))
    twin.call("published", lambda s: s.jobs_by_status(JobStatus.PUBLISHED))
    twin.call("page by page", lambda s: list(s.iter_jobs_by_status(JobStatus.QUEUED, page=1)))


def test_schedule_claims_answer_alike(twin: Twin) -> None:
    twin.call("a live job", lambda s: s.create_job(a_job("job-live", "sched-1")))
    twin.call("claim a free schedule", lambda s: s.claim_schedule("sched-1", "job-live", NOW, NOW + 3600))
    twin.call("claim it again (our own)", lambda s: s.claim_schedule("sched-1", "job-live", NOW, NOW + 3600))
    twin.call("held by a live job", lambda s: s.claim_schedule("sched-1", "job-other", NOW, NOW + 3600))
    twin.call("who holds it", lambda s: s.active_job("sched-1"))
    twin.call("end the holder", lambda s: s.save_job(ended(a_job("job-live", "sched-1"))))
    twin.call(
        "take over from an ended job", lambda s: s.claim_schedule("sched-1", "job-next", NOW, NOW + 3600)
    )
    twin.call(
        "a claim whose job is not written yet", lambda s: s.claim_schedule("sched-1", "job-3", NOW + 30, NOW)
    )
    twin.call("... after the grace", lambda s: s.claim_schedule("sched-1", "job-3", NOW + 120, NOW + 3600))
    twin.call("release another's claim", lambda s: s.release_schedule("sched-1", "job-next"))
    twin.call("release our claim", lambda s: s.release_schedule("sched-1", "job-3"))
    twin.call("no claim", lambda s: s.active_job("sched-1"))
    twin.call("release nothing", lambda s: s.release_schedule("sched-1", "job-3"))


def test_telling_leases_answer_alike(twin: Twin) -> None:
    twin.call("claim the telling", lambda s: s.claim_telling("job-1", "stream", NOW, 60, NOW + 3600))
    twin.call("claim it again (ours)", lambda s: s.claim_telling("job-1", "stream", NOW + 5, 60, NOW + 3600))
    twin.call("held by another", lambda s: s.claim_telling("job-1", "ops", NOW + 10, 60, NOW + 3600))
    twin.call("after its lease", lambda s: s.claim_telling("job-1", "ops", NOW + 120, 60, NOW + 3600))
    twin.call("release another's", lambda s: s.release_telling("job-1", "stream"))
    twin.call("release ours", lambda s: s.release_telling("job-1", "ops"))
    twin.call("release nothing", lambda s: s.release_telling("job-1", "ops"))


def test_idempotency_answers_alike(twin: Twin) -> None:
    lock = "idem-lock"
    twin.call("lock a new key", lambda s: s.lock_idempotency("k", "h1", "tok-1", NOW, 30, NOW + 3600))
    twin.call(
        "lock it again (our own)", lambda s: s.lock_idempotency("k", "h1", "tok-1", NOW, 30, NOW + 3600)
    )
    twin.call("held, not expired", lambda s: s.lock_idempotency("k", "h1", "tok-2", NOW + 5, 30, NOW + 3600))
    twin.call("expired, another body", lambda s: s.lock_idempotency("k", "h2", "tok-3", NOW + 60, 30, NOW))
    twin.call("expired, the same body", lambda s: s.lock_idempotency("k", "h1", "tok-4", NOW + 60, 30, NOW))
    twin.call(
        "complete with a lost lock", lambda s: s.complete_idempotency("k", "h1", "tok-1", {"a": 1}, NOW)
    )
    twin.call("complete", lambda s: s.complete_idempotency("k", "h1", "tok-4", {"publishId": lock}, NOW))
    twin.call(
        "complete again", lambda s: s.complete_idempotency("k", "h1", "tok-4", {"publishId": lock}, NOW)
    )
    twin.call("lock a completed key", lambda s: s.lock_idempotency("k", "h1", "tok-5", NOW + 99, 30, NOW))
    twin.call("release a completed key", lambda s: s.release_idempotency("k", "tok-4"))
    twin.call("lock another key", lambda s: s.lock_idempotency("k2", "h1", "tok-6", NOW, 30, NOW))
    twin.call("release another's lock", lambda s: s.release_idempotency("k2", "tok-7"))
    twin.call("release our lock", lambda s: s.release_idempotency("k2", "tok-6"))


def test_observations_watches_and_operations_answer_alike(twin: Twin) -> None:
    twin.call("observe", lambda s: s.put_observation("edge:e1", NOW, {"ok": True}, 30))
    twin.call("an older look", lambda s: s.put_observation("edge:e1", NOW - 1, {"ok": False}, 30))
    twin.call("a newer look", lambda s: s.put_observation("edge:e1", NOW + 1, {"ok": False}, 30))
    twin.call("read it", lambda s: s.get_observation("edge:e1"))
    twin.call("read none", lambda s: s.get_observation("edge:none"))
    twin.call("watch", lambda s: s.watch("job-1", ["e1", "e2", "e1"], NOW + 3600))
    twin.call("watch again", lambda s: s.watch("job-2", ["e1"], NOW + 600))
    twin.call("watchers", lambda s: s.watchers("e1"))
    twin.call("unwatch", lambda s: s.unwatch("e1", ["job-1", "job-2"]))
    twin.call("nobody watches", lambda s: s.watchers("e1"))
    twin.call("unwatch nothing", lambda s: s.unwatch("e2", []))
    twin.call("a shorter watch", lambda s: s.watch("job-3", ["e2"], NOW + 60))
    twin.call("a longer watch", lambda s: s.watch("job-4", ["e2"], NOW + 7200))
    twin.call("hear", lambda s: s.hear("e1", NOW + 0.25))
    twin.call("hear an older event", lambda s: s.hear("e1", NOW - 3))
    twin.call("hear a newer event", lambda s: s.hear("e1", NOW + 9.5))
    twin.call("heard", lambda s: s.heard(["e1", "e2", "e1"]))
    twin.call("an unanswered query", lambda s: s.mark_unanswered("q9", NOW))
    twin.call("begin a query", lambda s: s.begin_query("q1", "op-1", NOW))
    twin.call("another container begins it", lambda s: s.begin_query("q1", "op-2", NOW + 1))
    twin.call("its result", lambda s: s.record_query_result("op-1", "https://download", NOW + 2))
    twin.call("its result again", lambda s: s.record_query_result("op-1", "https://other", NOW + 3))
    twin.call("a result without a URL", lambda s: s.record_query_result("op-3", None, NOW + 3))
    twin.call("pending", lambda s: s.pending_query("q1"))
    twin.call("end it", lambda s: s.end_query("q1"))
    twin.call("none pending", lambda s: s.pending_query("q1"))
    for status, at in [
        ("Processing", NOW),
        ("Complete", NOW + 1),
        ("Processing", NOW + 2),
        ("Error", NOW + 3),
    ]:
        outcome = OperationOutcome("op-9", status, "Update", "bu-1", {"published": True}, at)
        twin.call(f"outcome {status}", lambda s, outcome=outcome: s.record_operation(outcome))
    twin.call("the outcome", lambda s: s.operation_outcome("op-9"))


def test_the_weekly_run_log_answers_alike(twin: Twin) -> None:
    twin.run_log("no run", lambda log: log.progress("run-1"))
    twin.run_log("first", lambda log: log.record("run-1", RunProgress(NOW, "bu-03", False, 9), NOW))
    twin.run_log(
        "a duplicate behind", lambda log: log.record("run-1", RunProgress(NOW + 5, "bu-01", False, 9), NOW)
    )
    twin.run_log("further", lambda log: log.record("run-1", RunProgress(NOW + 5, "bu-09", True, 9), NOW))
    twin.run_log("read", lambda log: log.progress("run-1"))


# --- random sequences of them (Hypothesis' stateful testing) -----------------------------------------------

JOBS = st.sampled_from(["job-a", "job-b", "job-c"])
KEYS = st.sampled_from(["k-1", "k-2"])
SCHEDULES = st.sampled_from(["sched-1", "sched-2"])
MOMENTS = st.sampled_from([NOW - 120, NOW, NOW + 20, NOW + 90])
STATUSES = st.sampled_from(
    [JobStatus.WAITING, JobStatus.PUBLISHING, JobStatus.PUBLISHED, JobStatus.CANCELLED]
)


class SameAnswers(RuleBasedStateMachine):
    """Any sequence of store operations: moto and the in-memory table answer alike at every step."""

    url = ""

    @initialize()
    def table(self) -> None:
        self.twin = Twin(self.url)

    def teardown(self) -> None:
        if hasattr(self, "twin"):
            self.twin.drop()

    @rule(job_id=JOBS, schedule=SCHEDULES)
    def create(self, job_id: str, schedule: str) -> None:
        self.twin.call("create", lambda s: s.create_job(a_job(job_id, schedule)))

    @rule(job_id=JOBS, status=STATUSES, from_version=st.sampled_from([None, 0]))
    def save(self, job_id: str, status: JobStatus, from_version: int | None) -> None:
        def save(store: DynamoJobStore) -> Any:
            job = store.get_job(job_id)
            if job is None:
                return None
            version = job.version if from_version is None else from_version
            due = None if status.terminal else job.due_at
            return store.save_job(
                job.model_copy(update={"status": status, "version": version, "due_at": due})
            )

        self.twin.call("save", save)

    @rule(job_id=JOBS, key=KEYS)
    def join(self, job_id: str, key: str) -> None:
        self.twin.call("join", lambda s: s.add_joiner(job_id, Joiner(key=key, at=NOW)))

    @rule(schedule=SCHEDULES, job_id=JOBS, now=MOMENTS)
    def claim(self, schedule: str, job_id: str, now: float) -> None:
        self.twin.call("claim", lambda s: s.claim_schedule(schedule, job_id, now, now + 3600))

    @rule(schedule=SCHEDULES, job_id=JOBS)
    def release(self, schedule: str, job_id: str) -> None:
        self.twin.call("release", lambda s: s.release_schedule(schedule, job_id))

    @rule(key=KEYS, body=st.sampled_from(["h1", "h2"]), token=st.sampled_from(["t1", "t2"]), now=MOMENTS)
    def lock(self, key: str, body: str, token: str, now: float) -> None:
        self.twin.call("lock", lambda s: s.lock_idempotency(key, body, token, now, 30, now + 3600))

    @rule(key=KEYS, body=st.sampled_from(["h1", "h2"]), token=st.sampled_from(["t1", "t2"]))
    def complete(self, key: str, body: str, token: str) -> None:
        self.twin.call(
            "complete", lambda s: s.complete_idempotency(key, body, token, {"publishId": key}, NOW)
        )

    @rule(key=KEYS, token=st.sampled_from(["t1", "t2"]))
    def release_key(self, key: str, token: str) -> None:
        self.twin.call("release key", lambda s: s.release_idempotency(key, token))

    @rule(job_id=JOBS, entity=st.sampled_from(["e1", "e2"]), until=MOMENTS)
    def watch(self, job_id: str, entity: str, until: float) -> None:
        self.twin.call("watch", lambda s: s.watch(job_id, [entity], until))

    @rule(job_id=JOBS, teller=st.sampled_from(["stream", "ops"]), now=MOMENTS)
    def tell(self, job_id: str, teller: str, now: float) -> None:
        self.twin.call("claim telling", lambda s: s.claim_telling(job_id, teller, now, 60, now + 3600))

    @rule(job_id=JOBS, teller=st.sampled_from(["stream", "ops"]))
    def told(self, job_id: str, teller: str) -> None:
        self.twin.call("release telling", lambda s: s.release_telling(job_id, teller))

    @rule(entity=st.sampled_from(["e1", "e2"]), at=MOMENTS)
    def hear(self, entity: str, at: float) -> None:
        self.twin.call("hear", lambda s: s.hear(entity, at))

    @rule(job_id=JOBS, entity=st.sampled_from(["e1", "e2"]))
    def unwatch(self, job_id: str, entity: str) -> None:
        self.twin.call("unwatch", lambda s: s.unwatch(entity, [job_id]))

    @rule(now=MOMENTS)
    def overdue(self, now: float) -> None:
        self.twin.call("overdue", lambda s: s.overdue_jobs(now, 10))

    @rule(status=STATUSES)
    def listing(self, status: JobStatus) -> None:
        self.twin.call("by status", lambda s: s.jobs_by_status(status))

    @invariant()
    def watchers_alike(self) -> None:
        if hasattr(self, "twin"):
            self.twin.call("watchers", lambda s: [s.watchers("e1"), s.watchers("e2")])


def test_random_sequences_of_store_operations_answer_alike(moto_url: str) -> None:
    SameAnswers.url = moto_url
    case = SameAnswers.TestCase
    case.settings = settings(
        max_examples=12,
        stateful_step_count=15,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    case().runTest()
