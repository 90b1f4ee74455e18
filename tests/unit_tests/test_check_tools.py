"""The fork check: loading tools and questions, argument validity, grounding, the report."""

from pathlib import Path

import pytest

from app import check_tools
from app.check_tools import (
    CheckInputError,
    Question,
    argument_errors,
    load_questions,
    load_tools,
    run_check,
)
from app.cli import main
from app.grounding import result_used, unbacked_facts
from bench.scripted_model import ScriptedChatModel
from expressway.context import Context
from nodes.planner import encode_plan

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_TOOLS = ROOT / "examples/fork_check/warehouse_tools.py"
SAMPLE_QUESTIONS = ROOT / "examples/fork_check/questions.jsonl"


def test_the_sample_ships_its_tools_and_at_least_20_questions() -> None:
    names = {tool.name for tool in load_tools(str(SAMPLE_TOOLS))}
    assert names == {
        "find_product",
        "stock_level",
        "delivery_estimate",
        "convert_units",
        "convert_currency",
    }
    questions = load_questions(SAMPLE_QUESTIONS)
    assert len(questions) >= 20
    assert {tool for q in questions for tool in q.expected_tools} == names
    assert any(not q.needs_tools for q in questions)


def test_a_module_without_tools_list_gives_its_documented_public_functions(tmp_path) -> None:
    module = tmp_path / "my_tools.py"
    module.write_text(
        "from os import getcwd\n"
        "def lookup_order(order_id: int) -> str:\n    '''Order status.'''\n    return 'ok'\n"
        "def _private(x: int) -> str:\n    '''Hidden.'''\n    return ''\n"
        "def undocumented(x: int) -> str:\n    return ''\n"
    )
    assert [tool.name for tool in load_tools(str(module))] == ["lookup_order"]
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(CheckInputError, match="no tools in"):
        load_tools(str(tmp_path / "empty.py"))
    with pytest.raises(CheckInputError, match="cannot import the tools module"):
        load_tools(str(tmp_path / "missing.py"))


@pytest.mark.reliability("input")
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: JSONDecodeError"),
        ('{"expected_tools": []}', "line 2: KeyError"),
        ('{"question": "", "expected_tools": []}', "non-empty string"),
        ('{"question": "q", "expected_tools": "find_product"}', "list of tool names"),
        ('{"question": "q", "expected_tools": ["a"], "needs_tools": false}', "true if tools"),
    ],
)
def test_a_bad_questions_line_is_named(tmp_path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "fine", "expected_tools": ["a"]}\n' + line + "\n")
    with pytest.raises(CheckInputError, match=message):
        load_questions(path)


def test_argument_errors_follow_the_tool_schema_and_accept_references() -> None:
    tools = {tool.name: tool for tool in load_tools(str(SAMPLE_TOOLS))}
    convert = tools["convert_units"]
    assert argument_errors(convert, {"value": 25, "from_unit": "kg", "to_unit": "lb"}) == []
    assert argument_errors(convert, {"value": "$1", "from_unit": "kg", "to_unit": "lb"}) == []
    errors = argument_errors(convert, {"value": "lots", "from_unit": "kg"})
    assert any(e.startswith("value:") for e in errors)
    assert any("to_unit" in e and "required" in e for e in errors)


def test_grounding_backs_numbers_and_names_from_results_only() -> None:
    question = "How much does the Basecamp 3 tent weigh in pounds?"
    results = ["SKU-1005 Basecamp 3 tent (shelter): 449.00 USD, 3.2 kg", "3.2 kg = 7.05 lb"]
    answer = "The Basecamp 3 tent (SKU-1005) weighs 7.1 pounds, about 3.2 kg."
    assert unbacked_facts(answer, [question, *results]) == []
    assert [result_used(answer, result, question) for result in results] == [True, True]
    invented = "Sorry. The tent weighs 12 pounds and ships from Berlin."
    assert unbacked_facts(invented, [question, *results]) == ["12", "Berlin"]
    assert not result_used(invented, results[1], question)
    # No result at all: only facts already in the question are allowed.
    assert unbacked_facts("I could not look up the Basecamp 3 tent.", [question]) == []
    assert unbacked_facts("It weighs 1,200 g.", [question]) == ["1,200"]
    assert unbacked_facts("I'm sure Osaka's stock came in 2023, sadly.", ["Osaka"]) == ["2023"]


async def test_the_report_judges_plan_arguments_results_and_grounding() -> None:
    tools = load_tools(str(SAMPLE_TOOLS))
    good_plan = encode_plan([("convert_units", {"value": 25, "from_unit": "kg", "to_unit": "lb"})])
    model = ScriptedChatModel(
        plans=[good_plan, encode_plan([])], answer="25 kg is 55.12 lb, says the Osaka office."
    )
    questions = [
        Question(
            "Convert 25 kilograms to pounds with the converter tool.", ("convert_units",), True
        ),
        Question("Look up how many Basecamp tents are in stock in Denver.", ("stock_level",), True),
    ]
    seen = []
    report = await run_check(
        tools,
        questions,
        Context(max_replans=0),
        progress=seen.append,
        models={"fast": model, "frontier": model},
    )
    first, second = report["questions"]
    assert seen == report["questions"]
    assert first["plan_ok"] and first["planned"][0]["args_valid"] and first["planned"][0]["ran_ok"]
    assert first["results_used"] == [{"task_id": 1, "tool": "convert_units"}]
    assert first["unbacked_facts"] == ["Osaka"] and not first["grounded"]
    assert not second["plan_ok"] and second["missing_tools"] == ["stock_level"]
    # Nothing planned for a lookup: the graph itself says it could not look it up (a rule,
    # nodes/answer.py), so no fact is stated without a result.
    assert second["ok_results"] == 0 and second["unbacked_facts"] == [] and second["grounded"]
    totals = report["totals"]
    assert (totals["plan_ok"], totals["tool_questions"], totals["plan_ok_rate"]) == (1, 2, 0.5)
    assert totals["unbacked_fact_answers"] == 1 and totals["unbacked_without_any_result"] == 0
    assert not totals["goals"]["plan_ok_rate"]["met"]
    assert set(first["timings"]) >= {"route", "plan", "answer", "total", "wall"}
    lines = "\n".join(check_tools.question_lines(first, 1) + check_tools.summary_lines(report))
    assert "convert_units(value=25" in lines and "unbacked: Osaka" in lines
    assert "1/2 (50%; goal >= 70%: NOT met)" in lines


async def test_expected_tools_must_exist() -> None:
    with pytest.raises(CheckInputError, match=r"expects \['lookup_order'\]"):
        await run_check(
            load_tools(str(SAMPLE_TOOLS)), [Question("q", ("lookup_order",), True)], Context()
        )


@pytest.mark.reliability("input")
def test_cli_reports_a_bad_tools_module(capsys) -> None:
    code = main(["check-tools", "--tools", "nope_missing.py", "--questions", str(SAMPLE_QUESTIONS)])
    assert code == 2
    assert "cannot import the tools module 'nope_missing.py'" in capsys.readouterr().err


def test_the_repositorys_own_tools_package_can_be_checked_too() -> None:
    assert [tool.name for tool in load_tools("tools")] == [
        "calculator",
        "sql_query",
        "search_docs",
        "current_time",
        "convert_time",
    ]
    questions = load_questions(str(ROOT / "examples/fork_check/shipped_tools_questions.jsonl"))
    assert len(questions) >= 20 and all(question.needs_tools for question in questions)
