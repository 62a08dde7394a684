"""A container's cold start, without the cyclic garbage collector until its first answer.

Importing a handler and building what the first event needs (botocore's clients and service models,
pydantic's validators, the modules the path imports) allocates ~100,000 objects that the container
keeps for its life. The collector, triggered by allocation counts, runs full passes over all of them
again and again meanwhile: 45-55 ms of a cold start's first answer here (docs/benchmark.md). So a
handler module holds it (`gc.disable()`, its first statement, before its imports), and its first
invocation, once answered, moves everything alive into the permanent generation (`gc.freeze`: what
the container keeps is never scanned again) and resumes collection. The cyclic garbage of a cold
start (~1,700 objects) is frozen with it: that is all it costs.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def first_answer_uncollected(handler: Callable[P, R]) -> Callable[P, R]:
    """The handler, whose first invocation runs with the collector held, then freezes and resumes it."""
    first = True

    @wraps(handler)
    def answer(*args: P.args, **kwargs: P.kwargs) -> R:
        nonlocal first
        if not first:
            return handler(*args, **kwargs)
        first = False
        gc.disable()  # held already by the module's import; again for a handler imported elsewhere
        try:
            return handler(*args, **kwargs)
        finally:
            gc.freeze()
            gc.enable()

    return answer
