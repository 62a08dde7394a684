"""A handler's first answer runs without the cyclic collector; then what the container keeps is frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from wfm_publish.coldstart import first_answer_uncollected


@pytest.fixture(autouse=True)
def collector() -> Iterator[None]:
    gc.enable()
    yield
    gc.unfreeze()
    gc.enable()


def test_the_first_answer_runs_with_the_collector_held_and_freezes_what_it_built() -> None:
    seen: list[bool] = []

    @first_answer_uncollected
    def handler(event: dict[str, int], context: object) -> int:
        seen.append(gc.isenabled())
        return event["n"]

    assert handler({"n": 1}, None) == 1
    assert gc.isenabled() and gc.get_freeze_count() > 0
    assert handler({"n": 2}, None) == 2
    assert seen == [False, True]  # held for the first answer only


def test_a_first_answer_that_raises_still_resumes_collection() -> None:
    @first_answer_uncollected
    def handler(event: object, context: object) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler({}, None)
    assert gc.isenabled()
