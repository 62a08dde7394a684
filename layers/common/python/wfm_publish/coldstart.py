"""A container's first answer, without the cyclic garbage collector.

The first event builds what the container keeps for its life: botocore's clients and service models,
pydantic's validators, the modules the path imports (~100,000 objects). The collector, triggered by
allocation counts, runs full passes over all of them again and again meanwhile: 50-80 ms of the cold
start's first answer here (docs/benchmark.md). So each handler's first invocation runs with the
collector held; once it has answered, everything alive is moved to the permanent generation
(`gc.freeze`: what the container keeps is never scanned again) and collection resumes. The cyclic
garbage of a cold start (~1,700 objects) is frozen with it: that is all it costs.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def first_answer_uncollected(handler: Callable[P, R]) -> Callable[P, R]:
    """The handler, whose first invocation runs with the collector held (then freezes and resumes it)."""
    first = True

    @wraps(handler)
    def answer(*args: P.args, **kwargs: P.kwargs) -> R:
        nonlocal first
        if not first:
            return handler(*args, **kwargs)
        first = False
        enabled = gc.isenabled()  # held already: another first answer (the local runner's threads) resumes it
        gc.disable()
        try:
            return handler(*args, **kwargs)
        finally:
            if enabled:
                gc.freeze()
                gc.enable()

    return answer
