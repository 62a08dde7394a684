"""A chaos run on the real local stack: many publish jobs under faults, then the invariants.

    python -m wfm_publish_local.chaos.stack --jobs 1000 --seed 7

What runs, all in this process on 127.0.0.1:

* moto server (ThreadedMotoServer), with the fault proxy in front of it: on DynamoDB and SQS data-plane
  calls, answers lost after commit, 5xx before forwarding, throttling and latency (`data_plane_plan`);
* the embedded stack on the proxy's endpoint: the runner with a short visibility timeout (so a record
  whose worker died comes back within the run), several pollers per queue, and a seeded CrashPlan
  that kills invocations before or after one of their AWS calls;
* the Genesys Cloud simulator with a generated org: schedules across a few business units, short Edge
  software updates, other writers' edits (stale-version 409s), Genesys faults (5xx, dropped
  connections, a read timeout, 429 with Retry-After), and one business unit whose Edge never settles
  for the jobs that must end at their deadline;
* the ServiceNow stand-in, which records every callback;
* the dead-letter sweep (invoked through the runner) and the watchdog (the core's `rescue_overdue`
  with a short overdue bound: its Lambda handler has no way to take one) every few seconds.

Requests go over HTTP, signed as ServiceNow signs them: a first request per job, duplicates (the same
key and body again, some from several threads at once), joiners (the same schedule and options under
another key and callback), a few requests reusing a key with another body (must be 422) and cancels
at random moments. Every answer is kept. When every job has ended (bounded), the invariants are
checked and each violation printed with the seed and a short trace; the exit status is 1 if any.

One module a part: `options` (what a run is asked), `org` (the generated Genesys org), `traffic` (the
requests and their answers), `run` (everything started, the jobs waited for, the report), `checks`
(the invariants on the gathered evidence); `__main__` is the command.
"""
