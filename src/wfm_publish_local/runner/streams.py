"""The DynamoDB Streams event source: records filtered, batched, bisected and retried as Lambda does."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from wfm_publish_local.runner.eventsource import PollingThread, batch_item_failures
from wfm_publish_local.runner.function import LocalFunction
from wfm_publish_local.runner.patterns import filter_matches
from wfm_publish_local.specs import StreamEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

log = logging.getLogger(__name__)


def stream_record(raw: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A DynamoDB Streams GetRecords record -> the record Lambda's event carries."""
    record = json.loads(json.dumps(raw, default=str))
    created = raw.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        record["dynamodb"]["ApproximateCreationDateTime"] = int(created.timestamp())
    record.setdefault("eventVersion", "1.1")
    record.setdefault("eventSource", "aws:dynamodb")
    record["awsRegion"] = raw.get("awsRegion", region)
    record["eventSourceARN"] = stream_arn
    return dict(record)


def stream_failure_record(
    records: Sequence[Mapping[str, Any]],
    *,
    function_arn: str,
    stream_arn: str,
    shard_id: str,
    condition: str,
    invocations: int,
) -> dict[str, Any]:
    """What Lambda sends an OnFailure destination for a discarded stream batch: where the records are
    (shard and sequence numbers), not the records themselves."""
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]

    def arrival(image: Mapping[str, Any]) -> str:
        at = image.get("ApproximateCreationDateTime") or time.time()
        return (
            datetime.fromtimestamp(float(at), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )

    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": arrival(first),
            "approximateArrivalOfLastRecord": arrival(last),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


class StreamPoller(PollingThread):
    """One DynamoDB event source mapping: a thread that reads the table's stream, filters the records
    with the mapping's FilterCriteria and invokes the function with batches, as Lambda does:

    * a batch that fails (the function raises, or answers an invalid batchItemFailures) is split in two
      with BisectBatchOnFunctionError, which costs no retry; a batch of one is retried;
    * with ReportBatchItemFailures the records before the first failed one are done, and the rest is
      retried;
    * after MaximumRetryAttempts retries, or once a record is older than MaximumRecordAgeInSeconds, the
      batch's coordinates go to the OnFailure destination and the shard moves on.

    Lambda retries a stream batch at once; locally a short growing pause (retry_delay, doubled per
    retry, at most retry_delay_cap) separates the retries, so a test can watch them.
    """

    def __init__(
        self,
        function: LocalFunction,
        source: StreamEvent,
        *,
        client: DynamoDBStreamsClient,
        stream_arn: str,
        on_failure: Callable[[dict[str, Any]], None] | None = None,
        region: str = "us-east-1",
        poll_interval: float = 0.25,
        retry_delay: float = 0.1,
        retry_delay_cap: float = 2.0,
    ) -> None:
        self.function = function
        self.source = source
        self.client = client
        self.stream_arn = stream_arn
        self.on_failure = on_failure
        self.region = region
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.retry_delay_cap = retry_delay_cap
        self.batches = 0
        self.filtered_out = 0
        self.discarded: list[dict[str, Any]] = []
        self._iterators: dict[str, str | None] = {}
        super().__init__(f"ddbstream-{function.logical_id}-{source.name}")

    def _poll(self) -> None:
        self._refresh_shards()
        with self._busy:
            delivered = self.poll_once()
        if not delivered:
            self._stop.wait(self.poll_interval)

    def _refresh_shards(self) -> None:
        description = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        position = "TRIM_HORIZON" if self.source.starting_position == "TRIM_HORIZON" else "LATEST"
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.client.get_shard_iterator(
                    StreamArn=self.stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType=position,  # type: ignore[arg-type]
                )["ShardIterator"]

    def poll_once(self) -> int:
        """Read every shard once and deliver what came; returns how many records were read."""
        read = 0
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None or self._stop.is_set():
                continue  # a closed shard, or stopping
            answer = self.client.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = answer.get("NextShardIterator")
            raw = answer.get("Records", [])
            read += len(raw)
            records = [stream_record(r, self.stream_arn, self.region) for r in raw]
            kept = [r for r in records if self._selected(r)]
            self.filtered_out += len(records) - len(kept)
            for start in range(0, len(kept), self.source.batch_size):
                self._deliver(shard_id, kept[start : start + self.source.batch_size], retries=0)
        return read

    def _selected(self, record: Mapping[str, Any]) -> bool:
        return not self.source.filters or any(filter_matches(p, record) for p in self.source.filters)

    def _deliver(self, shard_id: str, records: list[dict[str, Any]], retries: int) -> None:
        invocations = 0
        while records and not self._stop.is_set():
            invocations += 1
            outcome, failed_from = self._invoke(records)
            if outcome == "ok":
                return
            if outcome == "error" and self.source.bisect_on_error and len(records) > 1:
                middle = len(records) // 2  # splitting costs no retry
                self._deliver(shard_id, records[:middle], retries)
                self._deliver(shard_id, records[middle:], retries)
                return
            records = records[failed_from:]
            retries += 1
            condition = self._give_up(records, retries)
            if condition is not None:
                self._discard(shard_id, records, condition, invocations)
                return
            self._stop.wait(min(self.retry_delay_cap, self.retry_delay * 2 ** (retries - 1)))

    def _give_up(self, records: Sequence[Mapping[str, Any]], retries: int) -> str | None:
        limit = self.source.maximum_retry_attempts
        if limit >= 0 and retries > limit:
            return "RetryAttemptsExhausted"
        age_limit = self.source.maximum_record_age
        oldest = records[0]["dynamodb"].get("ApproximateCreationDateTime")
        if age_limit >= 0 and oldest is not None and time.time() - float(oldest) > age_limit:
            return "RecordAgeExceeded"
        return None

    def _invoke(self, records: list[dict[str, Any]]) -> tuple[str, int]:
        """("ok", 0), ("partial", index of the first failed record) or ("error", 0)."""
        self.batches += 1
        try:
            result = self.function.invoke({"Records": records})
        except Exception:
            log.info(
                "%s failed on a stream batch of %d", self.function.logical_id, len(records), exc_info=True
            )
            return "error", 0
        if not self.source.report_batch_item_failures:
            return "ok", 0
        numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
        failed = batch_item_failures(result, numbers)
        if failed is None:
            log.error(
                "%s returned an invalid batchItemFailures response: %r", self.function.logical_id, result
            )
            return "error", 0
        if not failed:
            return "ok", 0
        return "partial", min(numbers.index(n) for n in failed)

    def _discard(
        self, shard_id: str, records: Sequence[Mapping[str, Any]], condition: str, calls: int
    ) -> None:
        failure = stream_failure_record(
            records,
            function_arn=self.function.arn,
            stream_arn=self.stream_arn,
            shard_id=shard_id,
            condition=condition,
            invocations=calls,
        )
        self.discarded.append(failure)
        log.error("%s: %d stream record(s) discarded (%s)", self.function.logical_id, len(records), condition)
        if self.on_failure is not None:
            self.on_failure(failure)
