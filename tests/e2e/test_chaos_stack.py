"""Issue 9 on the real local stack, small: 30 jobs behind the fault proxy, with worker crashes, Genesys
faults, duplicates, joiners, reused keys and cancels; every invariant holds (`make chaos-stack` runs
1,000)."""

from __future__ import annotations

import pytest

from wfm_publish_local.chaos.stack import ChaosOptions, report, run

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(240)
def test_thirty_jobs_under_faults_and_crashes_keep_every_invariant() -> None:
    # No deadline jobs: their deadline is at least 60 s, longer than this run should take.
    options = ChaosOptions(jobs=30, seed=5, deadline_jobs=0, timeout=150, crash_rate=0.08)
    outcome = run(options, echo=print)
    report(outcome, echo=print)
    assert outcome.ok, "\n".join(f"({v.invariant}) {v.message}" for v in outcome.violations)
    figures = outcome.figures
    assert figures.jobs >= 30
    assert sum(figures.aws_faults.values()) > 0 and figures.genesys_faults["injected"] > 0
    assert figures.by_status.get("PUBLISHED", 0) >= 20  # faults slow jobs down; they still publish
