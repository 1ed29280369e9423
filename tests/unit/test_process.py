"""A service's background loop that ends takes its process down (services.contracts.process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from services.contracts.process import EXIT_BACKGROUND_STOPPED

_PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
    from services.contracts.process import exit_when_stopped, freeze_startup_heap

    async def loop(ending):
        await asyncio.sleep(0.01)
        if ending == "fails":
            raise RuntimeError("the consumer's store is closed")
        if ending == "returns":
            return
        await asyncio.sleep(3600)

    async def main(ending):
        freeze_startup_heap()
        task = asyncio.create_task(loop(ending), name="status-consumer")
        exit_when_stopped(task)
        await asyncio.sleep(0.2)
        task.cancel()  # what the service does when it shuts down
        await asyncio.sleep(0.05)
        print("served on")

    asyncio.run(main(sys.argv[1]))
    """
)


def _run(ending: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM, ending],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_failing_loop_exits_the_process_with_its_error_logged() -> None:
    result = _run("fails")
    assert result.returncode == EXIT_BACKGROUND_STOPPED
    assert "served on" not in result.stdout
    assert "status-consumer stopped" in result.stderr
    assert "the consumer's store is closed" in result.stderr


def test_a_loop_that_returns_exits_the_process_too() -> None:
    assert _run("returns").returncode == EXIT_BACKGROUND_STOPPED


def test_a_cancelled_loop_is_a_normal_shutdown() -> None:
    result = _run("cancelled")
    assert result.returncode == 0
    assert "served on" in result.stdout
