"""Issue 9's harness: many jobs under faults, then the exactly-once invariants checked.

`stack`: a run on the real local stack (moto server behind the fault proxy, the runner with worker
crashes, the Genesys simulator with its own faults), driven over HTTP: `python -m
wfm_publish_local.chaos.stack --jobs N --seed S`.
"""
