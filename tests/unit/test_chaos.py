"""The fault harness inside `make test`: seeded fault schedules through the real core in virtual time
(src/wfm_publish_local/chaos). `make chaos` runs 10,000; here a few hundred, and every seed that once
found a defect, so it stays found."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from wfm_publish_local.chaos.invariants import check
from wfm_publish_local.chaos.virtual import World

# Seeds that found defects on the way (docs/chaos.md says what each one found).
FOUND = [13, 157, 256, 259, 291, 375, 454, 1489, 1873, 1899, 9728]


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("seed", FOUND)
def test_a_seed_that_once_found_a_defect_keeps_every_promise(seed: int) -> None:
    world = World(seed).run()
    assert check(world) == []


def test_a_few_hundred_fault_schedules_keep_every_promise() -> None:
    broken = {}
    for seed in range(1000, 1250):
        violations = check(World(seed).run())
        if violations:
            broken[seed] = violations
    assert broken == {}


def test_the_harness_does_inject_every_kind_of_fault() -> None:
    seen: set[str] = set()
    for seed in range(2000, 2060):
        seen |= set(World(seed).run().counts)
    kinds = {k.split(" Retry-After")[0] for k in seen}
    assert {
        "worker crash",
        "dynamodb answer lost after commit",
        "dynamodb error after commit",
        "dynamodb 5xx before commit",
        "dynamodb throttled (commits late)",
        "sqs duplicate",
        "sqs error after send",
        "sqs redelivery after the visibility timeout",
        "genesys dropped before",
        "genesys answer lost after",
        "genesys 429",
    } <= kinds
