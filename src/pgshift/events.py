"""Progress events emitted by the core.

The core never prints: it calls an ``EventSink`` with these plain records, and the CLI turns them
into progress bars, log lines or nothing at all. Tests collect them in a list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Event:
    """Base class: every event has a short human title."""

    title: str


@dataclass(frozen=True)
class StepStarted(Event):
    step: str  # a stable id, e.g. "db:sales:restore"
    total: float | None = None  # units of work, when known (bytes, tables…)
    unit: str = ""


@dataclass(frozen=True)
class StepProgress(Event):
    step: str
    completed: float
    total: float | None = None


@dataclass(frozen=True)
class StepFinished(Event):
    step: str
    ok: bool = True
    seconds: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class Message(Event):
    """A log line: a child program's stderr, a warning, a statement applied to the target."""

    level: Level = Level.INFO
    source: str = "pgshift"
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """The sink of runs nobody watches."""


class Collector:
    """A sink that keeps every event (tests, JSON summaries)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def messages(self, level: Level | None = None) -> list[Message]:
        return [e for e in self.events if isinstance(e, Message) and (level is None or e.level == level)]
