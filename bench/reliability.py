"""`make reliability`: runs every test marked `reliability(category)` and prints cases tried and
passed per category (tools, model output, backends, configuration, input, security), as a table
and as one JSON object. Load and durability are listed as not built yet, not as passed."""

import collections
import json
import sys
from typing import Any

import pytest

CATEGORIES = ("tools", "model output", "backends", "configuration", "input", "security")
NOT_BUILT = ("load (200 concurrent runs through the server)", "durability (SIGKILL and resume)")


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
    for missing in NOT_BUILT:
        print(f"{missing}: not built yet", file=sys.stderr)
    return {
        "benchmark": "reliability",
        "schema_version": 1,
        "pytest_exit_code": int(exit_code),
        "categories": rows,
        "not_built": list(NOT_BUILT),
    }


if __name__ == "__main__":
    report = main(sys.argv[1:])
    print(json.dumps(report))
    sys.exit(report["pytest_exit_code"])
