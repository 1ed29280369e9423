"""When an agent has stopped making progress: records wait on its input partitions and it has
finished no batch for too long, outside a rebalance. Pure: times and counts come from the caller.

A stalled worker holds its partitions while doing nothing with them, and nothing else notices:
the group still sees it alive. The worker exits instead, and its supervisor starts it again
(docs/operations.md); its partitions are read again from their committed offsets, which the
idempotent state makes safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stall:
    agent: str
    waiting: int  # records on its input partitions above their committed offsets
    quiet_seconds: float  # since its last batch, the end of a rebalance, or an empty backlog


class StallWatch:
    """Per agent, when it was last seen doing well: a batch finished, nothing waiting, or a
    rebalance under way (which pauses every agent on purpose)."""

    def __init__(self, limit_seconds: float, agents: list[str], now: float) -> None:
        self.limit_seconds = limit_seconds
        self._well_at = dict.fromkeys(agents, now)

    def batch_done(self, agent: str, now: float) -> None:
        self._well_at[agent] = now

    def check(self, waiting: Mapping[str, int], rebalancing: bool, now: float) -> Stall | None:
        """The first agent stalled, given the records waiting on each agent's inputs; never
        one when the limit is 0 (the watch is off)."""
        for agent in self._well_at:
            if rebalancing or waiting.get(agent, 0) <= 0:
                self._well_at[agent] = now
        for agent, well_at in self._well_at.items():
            if self.limit_seconds and now - well_at >= self.limit_seconds:
                return Stall(agent, waiting[agent], now - well_at)
        return None
