"""What the local stack starts and stops (servers, stand-ins, stacks): `with` starts it and stops it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Running(ABC):
    @abstractmethod
    def start(self) -> Self:
        """Start and answer the thing itself (`with` starts it once)."""

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
