"""SIGKILL mid-answer, then resume from the SQLite checkpoint (bench/durability.py runs it)."""

import pytest

from bench.durability import run


@pytest.mark.reliability("durability")
def test_a_killed_run_resumes_without_losing_messages_or_repeating_tools(tmp_path) -> None:
    report = run(tmp_path)
    assert report["first_exit_code"] == -9 and report["killed_after_tokens"] == 5
    assert report["tool_calls_before_kill"] == 2
    assert report["tool_calls_after_resume"] == 2, "a finished side-effect tool ran again"
    assert report["messages"] == ["human", "ai"] and report["answer_complete"], report
