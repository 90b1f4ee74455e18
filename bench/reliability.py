"""`make reliability`: runs every test marked `reliability(category)` and prints cases tried and
passed per category (tools, model output, backends, configuration, input, security), then the load
test (200 concurrent runs through each HTTP route of `langgraph dev`, bench/load.py), as a table
and as one JSON object. The durability cases: tests/unit_tests/test_durable_tasks.py (a run
stopped while tools run, resumed on SQLite) and bench/durability.py (SIGKILL mid-answer and
mid-tools, then resume, on SQLite and PostgreSQL)."""

import collections
import json
import sys
from typing import Any

import pytest

from bench import load as load_benchmark

CATEGORIES = (
    "tools",
    "model output",
    "backends",
    "configuration",
    "input",
    "security",
    "durability",
)


class CountByCategory:
    """A pytest plugin that tallies each marked test's outcome under its category."""

    def __init__(self) -> None:
        self.tally: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]):
        outcome = yield
        report = outcome.get_result()
        marker = item.get_closest_marker("reliability")
        # One count per test: its call phase, or the setup phase when that failed instead.
        if marker and (report.when == "call" or report.failed):
            self.tally[marker.args[0]][report.outcome] += 1


def main(argv: list[str]) -> dict[str, Any]:
    plugin = CountByCategory()
    exit_code = pytest.main(
        ["-q", "-m", "reliability", "-p", "no:cacheprovider", "tests", *argv], plugins=[plugin]
    )
    rows = [
        {
            "category": category,
            "cases": sum(plugin.tally[category].values()),
            "passed": plugin.tally[category]["passed"],
            "failed": plugin.tally[category]["failed"],
        }
        for category in CATEGORIES
    ]
    print("\ncategory        cases  passed  failed", file=sys.stderr)
    for row in rows:
        print(
            f"{row['category']:<15} {row['cases']:>5}  {row['passed']:>6}  {row['failed']:>6}",
            file=sys.stderr,
        )
    load = load_benchmark.main([])
    for route, figures in load["routes"].items():
        print(
            f"load ({route} route): {figures['completed']}/{load['concurrent_runs']} runs "
            f"completed, {figures['failed']} failed; e2e p50 {figures['e2e_p50_s']} s, p99 "
            f"{figures['e2e_p99_s']} s; first token p50 {figures['ttft_p50_s']} s, p99 "
            f"{figures['ttft_p99_s']} s; server memory {figures['server_rss_mb_before']} -> "
            f"{figures['server_rss_mb_after']} MB, CPU {figures['server_cpu_ms_per_run']} ms "
            "per run",
            file=sys.stderr,
        )
    return {
        "benchmark": "reliability",
        "schema_version": 1,
        "pytest_exit_code": int(exit_code),
        "categories": rows,
        "load": load,
    }


if __name__ == "__main__":
    report = main(sys.argv[1:])
    print(json.dumps(report))
    lost = any(
        figures["failed"] or figures["completed"] < report["load"]["concurrent_runs"]
        for figures in report["load"]["routes"].values()
    )
    sys.exit(report["pytest_exit_code"] or int(bool(lost)))
