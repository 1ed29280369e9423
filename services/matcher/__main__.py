"""Command line of the matcher.

python -m services.matcher                   run the Faust worker
python -m services.matcher setup-local PATH  nothing to set up: its state lives in Faust tables
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import uvloop
from faust.worker import Worker

from services.contracts.logs import json_handler
from services.contracts.process import freeze_startup_heap
from services.matcher.settings import MatcherSettings
from services.matcher.worker import MatcherConsumer, create_app, task_waits


class _Worker(Worker):
    """Faust's worker with our log level kept: mode's logging setup leaves loggers at DEBUG,
    and formatting Faust's per-message debug lines cost a third of the worker's time."""

    def __init__(self, *args: Any, level: str, **kwargs: Any) -> None:
        self._level = level.upper()
        super().__init__(*args, **kwargs)

    def _setup_logging(self) -> None:
        super()._setup_logging()
        logging.getLogger().setLevel(self._level)

    async def _cry(self) -> None:
        """`kill -USR1`: where every asyncio task waits and what the consumer fetches, for a
        worker that seems stuck (docs/operations.md). Mode's own dump would print the frames'
        local variables, citizen IDs among them; this prints code locations only."""
        for name, chain in task_waits().items():
            print(f"task {name}:", *chain, sep="\n  ", file=sys.stderr)
        consumer = self.app.consumer
        if isinstance(consumer, MatcherConsumer):
            logging.getLogger(__name__).warning("fetch state", extra=consumer.fetch_state())


def main(argv: list[str]) -> int:
    if argv[:1] == ["setup-local"]:
        print(
            "matcher: nothing to set up (its state is in Faust tables, its topics in the registry)"
        )
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    settings = MatcherSettings()
    # uvloop: a third of the worker's time went to asyncio's pure-Python loop and socket writes.
    uvloop.install()
    app = create_app(settings)
    app.conf.loghandlers = [json_handler("matcher")]
    freeze_startup_heap()
    # Faust (mode) sets up logging itself: its plain handler writes to /dev/null, ours JSON to stderr.
    worker = _Worker(
        app,
        level=settings.log_level,
        loglevel=settings.log_level,
        logfile=os.devnull,
        redirect_stdouts=False,
        quiet=True,
    )
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
