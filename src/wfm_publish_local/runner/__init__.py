"""The local runner: what Lambda and its event sources, API Gateway and EventBridge do, in-process.

`sam local` needs Docker; this does not. Each function of template.yaml is loaded from its CodeUri and
called with real-format events and a Lambda context object. One module per service it stands in for:

* `function`: Lambda: `LocalFunction` loads a handler and invokes it with a `LambdaContext`; `LayerPaths`
  puts the functions' layers on the import path.
* `apigateway`: `ApiFront`, an HTTP server that turns requests into API Gateway REST (v1) proxy events.
* `sqs`, `streams`: the SQS and DynamoDB Streams event sources (`SqsPoller`, `StreamPoller`), on the
  polling thread and partial batch rules of `eventsource`; `sqs.peek` and `sqs.depth` read a queue
  without taking from it. `sources`: `EventSources`, the pollers running for a stack's functions and
  its relays, started per function and stopped together.
* `eventbridge`: rules invoking functions, `EventRelay` (a partner bus's events), `EventCapture` (what
  the functions put on the default bus); `patterns`: the pattern syntax rules and filters share.
* `scheduler`: `schedule_event`, a function's ScheduleV2 event, and `schedule_input`, the payload EventBridge
  Scheduler delivers for it.
* `metrics`: `EmfCapture`, the embedded-metric-format lines the functions print, summed as CloudWatch would.
* `crash`: `CrashPlan`, optional seeded worker deaths at an invocation's AWS calls (its SQS records come
  back after the visibility timeout, its stream batch is retried, its API request answers 502).

`stack.LocalStack` wires these to the moto server and the resources built from the template.
"""
