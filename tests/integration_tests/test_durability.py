"""SIGKILL while the answer streams and while tools run, then resume in a new process, on SQLite
and on PostgreSQL (bench/durability.py runs it; `--repeat 20` for the full figure)."""

from pathlib import Path

import pytest

from bench.durability import run


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_uri")
    return str(tmp_path / "threads.sqlite")


@pytest.mark.reliability("durability")
def test_a_run_killed_mid_answer_resumes_without_losing_messages_or_repeating_tools(
    tmp_path: Path, store: str
) -> None:
    report = run(tmp_path, store, scenario="answer")
    assert report["first_exit_code"] == -9 and report["killed_after_tokens"] == 5
    assert report["tool_calls_before_kill"] == 2
    assert report["tool_calls_after_resume"] == 2, "a finished side-effect tool ran again"
    assert report["messages"] == ["human", "ai"] and report["answer_complete"], report


@pytest.mark.reliability("durability")
def test_a_run_killed_while_tools_run_repeats_no_side_effect_and_reports_calls_in_flight(
    tmp_path: Path, store: str
) -> None:
    report = run(tmp_path, store, scenario="tools", repeat=3, seed=18)
    runs = report["tools_runs"]
    assert all(r["first_exit_code"] == -9 and r["in_flight_at_kill"] for r in runs), runs
    assert report["side_effect_reexecutions"] == 0, runs
    assert report["in_flight_side_effects"] > 0
    assert report["in_flight_side_effects_reported"] == report["in_flight_side_effects"], runs
    assert report["in_flight_side_effects_repeated"] == 0, runs
    assert report["read_only_in_flight_rerun"] > 0
    assert report["results_reused"] >= len(runs)
    assert report["state_lost"] == 0 and report["answers_complete"] == len(runs), runs
    assert report["clean_runs"] == len(runs)
