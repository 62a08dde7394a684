"""SQS delays stop at 900 s: longer waits travel as hops and arrive on time."""

from wfm_publish.clock import VirtualClock
from wfm_publish.models import JobMessage, Step
from wfm_publish.queues import MAX_DELAY, Queue, QueueSender


class RecordingTransport:
    """The SQS boundary, recorded: what would have been sent and with which delay."""

    def __init__(self) -> None:
        self.sent: list[tuple[Queue, JobMessage, int]] = []

    def send(self, queue: Queue, body: str, delay_seconds: int) -> None:
        self.sent.append((queue, JobMessage.model_validate_json(body), delay_seconds))


def message() -> JobMessage:
    return JobMessage(job_id="j", ticket="t", step=Step.VALIDATE)


def test_short_waits_are_one_delayed_message() -> None:
    transport, clock = RecordingTransport(), VirtualClock()
    QueueSender(transport, clock).send(Queue.VALIDATION, message(), 12.2)
    [(_, sent, delay)] = transport.sent
    assert delay == 13 and sent.not_before is None


def test_a_long_wait_hops_until_it_is_due() -> None:
    transport, clock = RecordingTransport(), VirtualClock()
    sender = QueueSender(transport, clock)
    start = clock.now()
    sender.send(Queue.VALIDATION, message(), 2000)
    hops = 0
    while True:
        _, sent, delay = transport.sent[-1]
        assert delay <= MAX_DELAY
        clock.advance(delay)
        if not sender.hop_if_early(Queue.VALIDATION, sent):
            break
        hops += 1
    assert hops == 2
    assert 2000 <= clock.now() - start <= 2001


def test_a_message_on_time_is_not_hopped() -> None:
    transport, clock = RecordingTransport(), VirtualClock()
    on_time = message().model_copy(update={"not_before": clock.now() + 0.5})
    assert not QueueSender(transport, clock).hop_if_early(Queue.VALIDATION, on_time)
    assert transport.sent == []
