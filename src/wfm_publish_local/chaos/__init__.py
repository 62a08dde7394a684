"""The fault harness: many jobs under faults, then the promises checked (docs/chaos.md).

`python -m wfm_publish_local.chaos`: seeded worlds in virtual time through the real core (virtual.py,
what a seed draws in plan.py, the invariants in invariants.py). `stack`: a run on the real local stack
(moto server behind the fault proxy, the runner with worker crashes, the Genesys simulator with its own
faults), driven over HTTP: `python -m wfm_publish_local.chaos.stack --jobs N --seed S`.
"""
