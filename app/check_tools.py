"""The fork check: how well the agent plans, calls and answers with a user's own tools.

`expressway check-tools --tools MODULE_OR_FILE --questions FILE.jsonl` builds the graph with the
module's tools alone, runs each question through it on the configured backend and reports, per
question: the tools planned against those expected, whether each planned call's arguments fit the
tool's schema and whether the call ran, which results the answer used, and whether the answer is
grounded (app/grounding.py defines it); then the totals against the goals below.

Questions file: JSON lines `{"question": "...", "expected_tools": ["a", "b"], "needs_tools": true}`
(`needs_tools` false: the question needs no tool, and a plan should call none).
"""

import importlib
import importlib.util
import inspect
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from jsonschema.validators import validator_for
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.graph.state import CompiledStateGraph

from app.grounding import result_used, unbacked_facts
from app.json_lines import read_json_lines
from expressway.context import Context
from expressway.mcp_tools import configured_servers
from expressway.state import REFERENCE, TaskResult
from expressway.toolbox import as_tools, tool_parameters
from graphs.agent import build_graph
from nodes.answer import describe

SCHEMA_VERSION = 1
PLAN_GOAL = 0.7  # questions needing tools whose plan calls every expected tool with valid args
# Answers that state a tool-backed fact although no tool result was usable (the goal);
# answers that garble or compute a figure from results they had are reported beside it.
UNBACKED_GOAL = 0


class CheckInputError(ValueError):
    """The tools module or the questions file cannot be used; the message says why and the fix."""


@dataclass(frozen=True)
class Question:
    text: str
    expected_tools: tuple[str, ...]
    needs_tools: bool


def load_tools(spec: str) -> list[BaseTool]:
    """The tools of a module given as a file path or a dotted name: its `TOOLS` list (or
    `DEFAULT_TOOLS`, as in this repository's `tools` package), or else every public function
    defined in it that has a docstring (the description the model sees)."""
    module = _import(spec)
    listed = getattr(module, "TOOLS", None) or getattr(module, "DEFAULT_TOOLS", None)
    if listed is None:
        listed = [
            value
            for name, value in vars(module).items()
            if not name.startswith("_")
            and inspect.isfunction(value)
            and value.__module__ == module.__name__
            and inspect.getdoc(value)
        ]
    if not listed:
        raise CheckInputError(
            f"no tools in {spec}: define TOOLS = [...] or public functions with docstrings"
        )
    return as_tools(listed)


def _import(spec: str) -> ModuleType:
    path = Path(spec)
    try:
        if spec.endswith(".py") or path.is_file():
            if not path.is_file():
                raise FileNotFoundError(f"no file {spec}")
            loader = importlib.util.spec_from_file_location(path.stem, path)
            assert loader is not None and loader.loader is not None
            module = importlib.util.module_from_spec(loader)
            sys.modules[path.stem] = module  # dataclasses and pickling look modules up by name
            loader.loader.exec_module(module)
            return module
        if str(Path.cwd()) not in sys.path:  # the console script does not put it there
            sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(spec)
    except Exception as error:
        raise CheckInputError(
            f"cannot import the tools module {spec!r} ({type(error).__name__}: {error}); "
            "give a .py file path or a dotted module name importable from this directory"
        ) from error


def _question(raw: dict[str, Any]) -> Question:
    text, expected = raw["question"], raw.get("expected_tools", [])
    needs = raw.get("needs_tools", bool(expected))
    if not isinstance(text, str) or not text.strip():
        raise ValueError("`question` must be a non-empty string")
    if not isinstance(expected, list) or not all(isinstance(t, str) for t in expected):
        raise ValueError("`expected_tools` must be a list of tool names")
    if not isinstance(needs, bool) or (expected and not needs):
        raise ValueError("`needs_tools` must be true or false, and true if tools are named")
    return Question(text.strip(), tuple(expected), needs)


def load_questions(path: str | Path) -> list[Question]:
    """Read and check the questions file, naming the line of any problem."""
    questions = read_json_lines(
        path,
        _question,
        '{"question": "...", "expected_tools": ["tool"], "needs_tools": true}',
        what="the questions file",
        error=CheckInputError,
    )
    if not questions:
        raise CheckInputError(f"{path} has no questions")
    return questions


def argument_errors(tool: BaseTool, args: dict[str, Any]) -> list[str]:
    """Where `args` break the tool's JSON schema (the one the planner is shown). A whole-string
    reference to another task's result ("$1") fits any field: its value is known at run time."""
    schema = tool_parameters(tool)
    validator = validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or 'args'}: {error.message}"
        for error in validator.iter_errors(args)
        if not (isinstance(error.instance, str) and REFERENCE.fullmatch(error.instance.strip()))
    ]


async def check_question(
    graph: CompiledStateGraph,
    tools: dict[str, BaseTool],
    question: Question,
    context: Context,
) -> dict[str, Any]:
    """Run one question through the graph and judge its plan, calls and answer."""
    events: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    started = time.perf_counter()
    error = ""
    try:
        stream = graph.astream(
            {"messages": [("user", question.text)]},
            context=context,
            stream_mode=["custom", "values"],
        )
        async for mode, payload in stream:
            if mode == "values":
                final = payload
            elif isinstance(payload, dict) and "type" in payload:
                events.append(payload)
    except Exception as failure:  # a failed run is a finding of the check, not its end
        error = f"{type(failure).__name__}: {failure}"
    wall_s = time.perf_counter() - started

    results: list[TaskResult] = final.get("results", [])
    by_id = {result.id: result for result in results}
    planned = []
    for event in events:
        if event["type"] != "plan.task":
            continue
        problems = argument_errors(tools[event["tool"]], event["args"])
        result = by_id.get(event["task_id"])
        planned.append(
            {
                "task_id": event["task_id"],
                "tool": event["tool"],
                "args": event["args"],
                "args_valid": not problems,
                "args_errors": problems,
                "ran_ok": result is not None and result.status == "ok",
                "output": result.output if result else "",
            }
        )
    valid_tools = {task["tool"] for task in planned if task["args_valid"]}
    planned_tools = sorted({task["tool"] for task in planned})
    expected = set(question.expected_tools)
    # A question that needs tools must plan each expected one validly; one that needs none, none.
    plan_ok = bool(valid_tools) and expected <= valid_tools if question.needs_tools else not planned

    messages = final.get("messages", [])
    answer = messages[-1].text if messages and messages[-1].type == "ai" else ""
    ok_results = [result for result in results if result.status == "ok"]
    # An answer may say what failed (a call's arguments, its error): that is no tool-backed fact.
    failures = [describe(result) for result in results if result.status == "error"]
    unbacked = unbacked_facts(answer, [question.text, *(r.output for r in ok_results), *failures])
    finished = next((e for e in reversed(events) if e["type"] == "run.finished"), {})
    route = next((e for e in events if e["type"] == "route.decided"), {})
    return {
        "question": question.text,
        "needs_tools": question.needs_tools,
        "expected_tools": sorted(expected),
        "route": {key: route.get(key) for key in ("task", "tier", "use_tools")},
        "planned": planned,
        "planned_tools": planned_tools,
        "missing_tools": sorted(expected - valid_tools),
        "plan_errors": [e["error"] for e in events if e["type"] == "plan.error"],
        "plan_ok": plan_ok,
        "answer": answer,
        "ok_results": len(ok_results),
        "results_used": [
            {"task_id": r.id, "tool": r.tool}
            for r in ok_results
            if result_used(answer, r.output, question.text)
        ],
        "unbacked_facts": unbacked,
        "grounded": not unbacked and not error,
        "timings": {**finished.get("timings", {}), "wall": round(wall_s, 3)},
        "error": error,
    }


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The figures the issue sets goals for, and the counts behind them."""
    tool_rows = [row for row in rows if row["needs_tools"]]
    other_rows = [row for row in rows if not row["needs_tools"]]
    tasks = [task for row in rows for task in row["planned"]]
    plan_ok = sum(row["plan_ok"] for row in tool_rows)
    unbacked = [row for row in tool_rows if row["unbacked_facts"]]
    walls = [row["timings"]["wall"] for row in rows]
    plan_rate = plan_ok / len(tool_rows) if tool_rows else 0.0
    return {
        "questions": len(rows),
        "tool_questions": len(tool_rows),
        "plan_ok": plan_ok,
        "plan_ok_rate": round(plan_rate, 4),
        "no_tool_questions_planned_nothing": sum(row["plan_ok"] for row in other_rows),
        "planned_tasks": len(tasks),
        "args_valid": sum(task["args_valid"] for task in tasks),
        "calls_ok": sum(task["ran_ok"] for task in tasks),
        "grounded_answers": sum(row["grounded"] for row in rows),
        "unbacked_fact_answers": len(unbacked),
        "unbacked_without_any_result": sum(row["ok_results"] == 0 for row in unbacked),
        "failed_runs": sum(bool(row["error"]) for row in rows),
        "median_wall_s": round(statistics.median(walls), 3) if walls else 0.0,
        "goals": {
            "plan_ok_rate": {"goal": PLAN_GOAL, "met": plan_rate >= PLAN_GOAL},
            "unbacked_without_any_result": {
                "goal": UNBACKED_GOAL,
                "met": sum(row["ok_results"] == 0 for row in unbacked) <= UNBACKED_GOAL,
            },
        },
    }


async def run_check(
    tools: list[BaseTool],
    questions: Sequence[Question],
    context: Context,
    progress: Callable[[dict[str, Any]], None] = lambda row: None,
    models: Mapping[str, BaseChatModel] | None = None,
) -> dict[str, Any]:
    """Check every question in turn (one at a time, so timings are not shared) and report.
    `models` replaces tiers' endpoints, as in build_graph."""
    every_tool = list(tools)
    if context.mcp_config:  # the graph adds these tools itself; they are listed here to check args
        every_tool += await configured_servers(context.mcp_config).tools(
            context.mcp_startup_timeout_s
        )
    by_name = {tool.name: tool for tool in every_tool}
    for question in questions:
        unknown = sorted(set(question.expected_tools) - set(by_name))
        if unknown:
            raise CheckInputError(
                f"question {question.text!r} expects {unknown}, which are not among the tools: "
                f"{', '.join(by_name)}"
            )
    graph = build_graph(tools=tools, models=models)
    rows = []
    for question in questions:
        rows.append(await check_question(graph, by_name, question, context))
        progress(rows[-1])
    return {
        "schema_version": SCHEMA_VERSION,
        "backend": {
            tier: {"base_url": context.base_url(tier), "model": context.model_name(tier)}
            for tier in context.tier_names()
        },
        "tools": sorted(by_name),
        "questions": rows,
        "totals": totals(rows),
    }


def question_lines(row: dict[str, Any], number: int) -> list[str]:
    """A question's result for a person: a summary line and the details below it."""
    tasks = row["planned"]
    summary = (
        f"{number:>3}  {'ok' if row['plan_ok'] else 'MISS':<5}"
        f"{sum(t['args_valid'] for t in tasks)}/{len(tasks)} valid  "
        f"{sum(t['ran_ok'] for t in tasks)}/{len(tasks)} ran  "
        f"{len(row['results_used'])} used  {'grounded' if row['grounded'] else 'UNBACKED':<9} "
        f"{row['timings']['wall']:6.1f}s  {row['question'][:70]}"
    )
    calls = ", ".join(
        f"{t['tool']}({', '.join(f'{k}={v!r}' for k, v in t['args'].items())})"
        + ("" if t["args_valid"] else f" [invalid: {'; '.join(t['args_errors'])}]")
        for t in tasks
    )
    lines = [
        summary,
        f"       expected: {', '.join(row['expected_tools']) or '(none)'}   "
        f"planned: {calls or '(nothing)'}   route: {row['route']['task']}",
    ]
    if row["plan_errors"]:
        lines.append(f"       plan errors: {' | '.join(row['plan_errors'])[:300]}")
    if row["unbacked_facts"]:
        lines.append(f"       unbacked: {', '.join(row['unbacked_facts'])}")
    if row["error"]:
        lines.append(f"       run failed: {row['error']}")
    lines.append(f"       answer: {' '.join(row['answer'].split())[:200]}")
    return lines


def summary_lines(report: dict[str, Any]) -> list[str]:
    total = report["totals"]
    goals = total["goals"]
    return [
        "",
        f"plans calling every expected tool with valid arguments: {total['plan_ok']}/"
        f"{total['tool_questions']} ({total['plan_ok_rate']:.0%}; goal >= {PLAN_GOAL:.0%}: "
        f"{'met' if goals['plan_ok_rate']['met'] else 'NOT met'})",
        f"answers stating a fact with no usable tool result: "
        f"{total['unbacked_without_any_result']} (goal {UNBACKED_GOAL}: "
        f"{'met' if goals['unbacked_without_any_result']['met'] else 'NOT met'}); answers with "
        f"a figure no result backs (garbled or computed): {total['unbacked_fact_answers']}",
        f"questions needing no tool that planned nothing: "
        f"{total['no_tool_questions_planned_nothing']}/"
        f"{total['questions'] - total['tool_questions']}",
        f"planned calls: {total['planned_tasks']}, valid arguments {total['args_valid']}, "
        f"ran ok {total['calls_ok']}; grounded answers {total['grounded_answers']}/"
        f"{total['questions']}; failed runs {total['failed_runs']}; "
        f"median {total['median_wall_s']:.1f} s per question",
    ]
