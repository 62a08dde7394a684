"""What a chaos run on the local stack is asked to do: its size, seed, fault and crash rates, bounds."""

from __future__ import annotations

from dataclasses import dataclass

WEEK = "2023-10-23"  # a Monday; the scenario's `today` keeps it recent


CALLBACK_TABLE = "change_request"


STEP_SECONDS = 35.0  # the longest one step takes once delivered (consumer.STEP_MARGIN_SECONDS, and some)


RETRY_ON = {409, 500, 502, 503, 504}  # 409 only for REQUEST_IN_PROGRESS (see Client._final)


QUEUE_FUNCTIONS = ("TrunkValidationFunction", "ConflictRetryFunction")


@dataclass(frozen=True)
class ChaosOptions:
    jobs: int = 30
    seed: int = 1
    send_rate: float = 8.0  # first requests per second
    visibility_timeout: int = 10  # seconds: a dead worker's record comes back after this
    # The watchdog's bound for the run (300 s in production): longer than a message waits in the
    # run's queues when they are busiest, or the watchdog moves jobs that are only queued.
    overdue_after: float = 45.0
    sweep_every: float = 3.0  # seconds between watchdog and dead-letter sweeps
    crash_rate: float = 0.05  # per invocation of the queue functions and the notifier
    api_crash_rate: float = 0.01  # per API invocation (the caller retries a 502 with the same key)
    deadline_jobs: int | None = None  # jobs that cannot settle and must end at their deadline (60 s)
    duplicates: float = 0.15  # share of jobs whose request is sent again (same key, same body)
    concurrent: float = 0.4  # ... of which sent from several threads at once
    joiners: float = 0.1  # share of jobs joined by another request (other key, other callback)
    other_bodies: float = 0.04  # share of keys reused with another body (must be 422)
    cancels: float = 0.08  # share of jobs cancelled at a random moment
    sqs_concurrency: int = 3
    senders: int = 16
    timeout: float = 900.0  # every job must have ended within this (wall seconds)
    callback_timeout: float = 60.0  # then every callback must have arrived within this
    lost_writes: float = 0.03  # DynamoDB answers lost after commit
    faults: bool = True
    moto_process: bool = True  # moto server in a child process (a second core), else in this one
    # The run's time scale for the pipeline (waiting.Timing): an update whose outcome is unknown (a
    # worker that died between committing PUBLISHING and posting it) is confirmed for this long before
    # the job validates again (180 s in production), and another writer's update is waited for as long.
    confirm_timeout: float = 20.0

    @property
    def stuck_jobs(self) -> int:
        return self.deadline_jobs if self.deadline_jobs is not None else max(1, self.jobs // 100)

    @property
    def business_units(self) -> int:
        return max(2, min(8, self.jobs // 25))

    @property
    def stuck_bound(self) -> float:
        """No job sits with nothing in flight longer than this: the watchdog's bound plus its sweep."""
        return self.overdue_after + self.sweep_every

    @property
    def deadline_slack(self) -> float:
        """A job ends by its deadline plus one step: the step that ends it may wait for a redelivery
        (visibility timeout) or the watchdog, then runs."""
        return self.stuck_bound + self.visibility_timeout + STEP_SECONDS
