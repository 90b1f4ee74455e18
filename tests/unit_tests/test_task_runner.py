"""The task runner: overlap from timestamps, dependency order, isolation, timeouts, dedup."""

import asyncio
import threading
import time

import pytest
from langchain_core.tools import tool

from expressway.events import now
from expressway.state import PlannedTask, TaskResult
from expressway.toolbox import as_tools
from nodes.task_runner import MAX_OUTPUT_CHARS, TaskRunner, resolve_references


def _overlap(results: list[TaskResult]) -> bool:
    """Every interval overlaps every other: the latest start is before the earliest finish."""
    return max(r.started_s for r in results) < min(r.finished_s for r in results)


def _sleepy_sync(seconds: float):
    def sleepy_sync(label: str) -> str:
        """Blocks its thread, like a sync HTTP client would."""
        time.sleep(seconds)
        return f"{label} done on {threading.current_thread().name}"

    return sleepy_sync


async def _run(tools, tasks, timeout_s=5.0, max_concurrency=64) -> list[TaskResult]:
    runner = TaskRunner(as_tools(tools), now(), timeout_s, max_concurrency)
    for task in tasks:
        runner.submit(task)
    return await runner.results()


async def test_sync_tools_run_concurrently_not_on_a_small_pool() -> None:
    tasks = [PlannedTask(i, "sleepy_sync", {"label": f"t{i}"}) for i in range(1, 33)]
    results = await _run([_sleepy_sync(0.2)], tasks)
    assert all(r.status == "ok" for r in results)
    assert _overlap(results)


async def test_async_tools_run_concurrently() -> None:
    async def sleepy_async(label: str) -> str:
        """Waits without blocking."""
        await asyncio.sleep(0.1)
        return label

    results = await _run(
        [sleepy_async], [PlannedTask(i, "sleepy_async", {"label": str(i)}) for i in range(1, 17)]
    )
    assert _overlap(results)


async def test_dependent_task_starts_after_its_dependency_and_gets_its_output() -> None:
    def lookup(key: str) -> str:
        """Returns a number."""
        time.sleep(0.05)
        return "21"

    def double(value: int) -> str:
        """Doubles."""
        return str(value * 2)

    results = await _run(
        [lookup, double],
        [
            PlannedTask(1, "lookup", {"key": "x"}),
            PlannedTask(2, "double", {"value": "$1"}, deps=[1]),
        ],
    )
    assert results[1].output == "42"
    assert results[1].started_s >= results[0].finished_s


@pytest.mark.reliability("tools")
async def test_a_failing_tool_is_isolated_and_its_dependents_fail_fast() -> None:
    def broken(x: str) -> str:
        """Always raises."""
        raise RuntimeError("disk on fire")

    def fine(x: str) -> str:
        """Works."""
        time.sleep(0.05)
        return "ok"

    results = await _run(
        [broken, fine],
        [
            PlannedTask(1, "broken", {"x": "a"}),
            PlannedTask(2, "fine", {"x": "b"}),
            PlannedTask(3, "fine", {"x": "$1"}, deps=[1]),
        ],
    )
    assert results[0].status == "error" and "disk on fire" in results[0].output
    assert results[1].status == "ok"
    assert results[2].status == "error" and "task(s) [1]" in results[2].output


@pytest.mark.reliability("tools")
async def test_timeout_is_honoured_and_siblings_finish() -> None:
    async def hangs(x: str) -> str:
        """Never returns."""
        await asyncio.sleep(3600)
        return x

    def quick(x: str) -> str:
        """Returns at once."""
        return x

    results = await _run(
        [hangs, quick],
        [PlannedTask(1, "hangs", {"x": "a"}), PlannedTask(2, "quick", {"x": "b"})],
        timeout_s=0.3,
    )
    assert results[0].status == "error" and "timed out after 0.3 s" in results[0].output
    assert 0.3 <= results[0].finished_s - results[0].started_s < 0.33  # within 10%
    assert results[1].output == "b"


@pytest.mark.reliability("model output")
async def test_malformed_arguments_become_an_error_result() -> None:
    def typed(count: int) -> str:
        """Needs an integer."""
        return str(count)

    results = await _run([typed], [PlannedTask(1, "typed", {"count": "many"})])
    assert results[0].status == "error" and "count" in results[0].output


@pytest.mark.reliability("tools")
async def test_identical_calls_execute_once() -> None:
    calls = []

    def counted(x: str) -> str:
        """Counts its calls."""
        calls.append(x)
        time.sleep(0.05)
        return x

    results = await _run([counted], [PlannedTask(i, "counted", {"x": "same"}) for i in (1, 2, 3)])
    assert calls == ["same"]
    assert [r.output for r in results] == ["same"] * 3


async def test_concurrency_cap_is_respected() -> None:
    running, peak = 0, 0

    async def tracked(x: str) -> str:
        """Tracks how many run at once."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return x

    await _run(
        [tracked],
        [PlannedTask(i, "tracked", {"x": str(i)}) for i in range(1, 21)],
        max_concurrency=3,
    )
    assert peak == 3


def test_resolve_references() -> None:
    outputs = {1: "12", 2: "Tokyo"}
    assert resolve_references({"a": "$1", "b": "time in ${2}", "c": 5}, outputs) == {
        "a": "12",
        "b": "time in Tokyo",
        "c": 5,
    }


async def test_langchain_tools_are_accepted_as_is() -> None:
    @tool
    def shout(text: str) -> str:
        """Upper-cases text."""
        return text.upper()

    results = await _run([shout], [PlannedTask(1, "shout", {"text": "hi"})])
    assert results[0].output == "HI"


async def test_a_replan_reuses_a_call_an_earlier_round_made_but_retries_a_failed_one() -> None:
    made: list[str] = []

    def lookup(key: str) -> str:
        """Looks a key up."""
        made.append(key)
        return f"value of {key}"

    earlier = [
        TaskResult(1, "lookup", {"key": "a"}, "ok", "value of a", 0.0, 0.1),
        TaskResult(2, "lookup", {"key": "b"}, "error", "error: lookup failed", 0.0, 0.1),
    ]
    runner = TaskRunner(as_tools([lookup]), now(), 5.0, 8, previous=earlier)
    runner.submit(PlannedTask(3, "lookup", {"key": "a"}))
    runner.submit(PlannedTask(4, "lookup", {"key": "b"}))
    results = await runner.results()
    assert [(r.id, r.status, r.output) for r in results] == [
        (3, "ok", "value of a"),
        (4, "ok", "value of b"),
    ]
    assert made == ["b"]


def test_references_are_filled_in_nested_values_and_prices_are_left_alone() -> None:
    args = {
        "ids": ["$1", "x"],
        "customer": {"name": "$1", "note": "fee of $1,200 or $2.50 for $1"},
        "body": "refund of $25",
    }
    assert resolve_references(args, {1: "ACME"}) == {
        "ids": ["ACME", "x"],
        "customer": {"name": "ACME", "note": "fee of $1,200 or $2.50 for ACME"},
        "body": "refund of $25",
    }


@pytest.mark.reliability("tools")
async def test_a_tool_that_exits_or_cancels_itself_fails_alone() -> None:
    def wrapped_cli(argv: str) -> str:
        """Runs a command-line program (argparse exits on bad arguments)."""
        raise SystemExit(2)

    async def async_exit(argv: str) -> str:
        """The same, async."""
        raise SystemExit(1)

    async def cancels_itself(key: str) -> str:
        """A client that raises CancelledError on its own."""
        raise asyncio.CancelledError

    def huge_error(key: str) -> str:
        """Fails with a very long message."""
        raise ValueError("E" * 1_000_000)

    def names(key: str) -> dict:
        """Returns names in their own scripts."""
        return {"name": "Jürgen Müller", "city": "東京"}

    tools = [wrapped_cli, async_exit, cancels_itself, huge_error, names, _sleepy_sync(0.05)]
    tasks = [
        PlannedTask(1, "wrapped_cli", {"argv": "--bad"}),
        PlannedTask(2, "async_exit", {"argv": "--bad"}),
        PlannedTask(3, "cancels_itself", {"key": "a"}),
        PlannedTask(4, "huge_error", {"key": "a"}),
        PlannedTask(5, "names", {"key": "a"}),
        PlannedTask(6, "sleepy_sync", {"label": "sibling"}),
    ]
    results = await _run(tools, tasks)
    assert [r.status for r in results] == ["error"] * 4 + ["ok"] * 2
    assert "sys.exit(2)" in results[0].output and "sys.exit(1)" in results[1].output
    assert "raised CancelledError" in results[2].output
    assert len(results[3].output) < MAX_OUTPUT_CHARS + 100
    assert results[4].output == '{"name": "Jürgen Müller", "city": "東京"}'


async def test_a_tool_that_takes_langchains_config_gets_it() -> None:
    from langchain_core.runnables import RunnableConfig

    async def whoami(greeting: str, config: RunnableConfig) -> str:
        """Says who is calling (the user comes from the run's config)."""
        return f"{greeting}, {config.get('configurable', {}).get('user', 'nobody')}"

    [result] = await _run([whoami], [PlannedTask(1, "whoami", {"greeting": "hi"})])
    assert (result.status, result.output) == ("ok", "hi, nobody")
