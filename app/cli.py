"""The `expressway` command: ask a question, serve the embedded model, route text, check tools."""

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from app.embedded import EmbeddedBackendError, EmbeddedServer, start_server
from app.json_lines import read_json_lines
from expressway.context import ConfigurationError, Context
from expressway.events import iter_events
from expressway.heap import freeze_static_heap
from expressway.models import BackendMisconfiguredError, BackendUnavailableError, check_backend
from expressway.timeline import render_text, run_spans
from routers import RoutingTableError, classify_turn, load_routing_table

EXIT_USAGE, EXIT_BACKEND, EXIT_RUN = 2, 3, 4
STAGES = ("route", "plan", "tools", "answer", "ttft", "total")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_backends(context: Context, progress: Callable[[str], None] = _say) -> None:
    """Start the embedded server if a tier uses it and it is not running; check the others. A
    wrong key or URL stops here; so does a tier that is down, unless another tier is up (the
    plan and the answer fall back to it), in which case it is a warning."""
    tiers = context.tier_names()
    if any(context.uses_embedded(tier) for tier in tiers):
        server = start_server(context.embedded_port, progress)
        if server.process is not None:
            progress(
                f"embedded vLLM left running (pid {server.process.pid}) for the next questions; "
                "stop it with `expressway stop-local`"
            )
    down: list[BackendUnavailableError] = []
    for tier in tiers:
        if context.uses_embedded(tier):
            continue
        try:
            check_backend(context, tier)
        except BackendMisconfiguredError:
            raise
        except BackendUnavailableError as error:
            down.append(error)
    if down and len(down) == len(tiers):
        raise down[0]
    for error in down:
        progress(f"warning: {error} Requests routed to it fall back to another tier.")


class ProgressPrinter:
    """Renders events for a person: answer tokens on stdout, progress and timings on stderr."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.out, self.err = out, err
        self.in_answer = False

    def __call__(self, event: dict[str, Any]) -> None:
        kind, t = event["type"], f"{event['t']:7.3f}s"
        if kind == "token":
            self.in_answer = True
            self.out.write(event["text"])
            self.out.flush()
            return
        if self.in_answer:
            self.out.write("\n")
            self.in_answer = False
        if kind == "route.decided":
            self._line(
                f"{t}  route  {event['task']} -> {event['tier']} tier "
                f"(confidence {event['confidence']:.2f}, {event['latency_ms']:.2f} ms)"
            )
        elif kind == "speculation.started":
            calls = ", ".join(f"{call['tool']}({_args(call)})" for call in event["calls"])
            self._line(f"{t}  guess  from a cached plan, started early: {calls}")
        elif kind == "answer.withheld":
            self._line(f"{t}  answer withheld (no usable tool result): {event['reason']}")
        elif kind == "plan.task":
            deps = f" after {event['deps']}" if event["deps"] else ""
            self._line(
                f"{t}  plan   task {event['task_id']}: {event['tool']}({_args(event)}){deps}"
            )
        elif kind == "plan.error":
            self._line(f"{t}  plan   invalid: {event['error']}")
        elif kind == "task.started":
            adopted = " (adopts the call started early)" if "speculated_at" in event else ""
            self._line(f"{t}  start  task {event['task_id']}: {event['tool']}{adopted}")
        elif kind == "task.finished":
            self._line(
                f"{t}  done   task {event['task_id']}: {event['status']} in "
                f"{event['duration_s'] * 1000:.0f} ms -> {event['output'][:80]!r}"
            )
        elif kind == "plan.started" and event.get("replan"):
            self._line(f"{t}  replan {event['replan']}: planning again with the results so far")
        elif kind == "fallback":
            self._line(
                f"{t}  fallback ({event['stage']}) {event['from_tier']} -> {event['to_tier']}: "
                f"{event['reason']}"
            )
        elif kind == "run.finished":
            self._timing_table(event["timings"])

    def _line(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def _timing_table(self, timings: dict[str, float]) -> None:
        self._line("\nstage    seconds")
        for stage in STAGES:
            if stage in timings:
                self._line(f"{stage:<8} {timings[stage]:7.3f}")


def _args(event: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in event.get("args", {}).items())


async def run_question(
    question: str, context: Context, on_event: Callable[[dict[str, Any]], None]
) -> None:
    # Imported here so `expressway serve-local` and `route` do not load the graph's dependencies.
    from graphs.agent import graph

    freeze_static_heap()
    stream = graph.astream(
        {"messages": [("user", question)]}, context=context, stream_mode=["custom"]
    )
    async for event in iter_events(stream):
        on_event(event)


def run_context(args: argparse.Namespace) -> Context:
    """The settings from the environment with the command's --mode and --tier. The routing table
    is loaded first: it declares the tiers beyond fast and frontier that --tier may name."""
    load_routing_table()
    overrides = {"execution_mode": args.mode, "force_tier": args.tier}
    return Context(**{name: value for name, value in overrides.items() if value})


def cmd_ask(args: argparse.Namespace) -> int:
    question = " ".join(args.question).strip()
    if not question:
        _say('usage: expressway ask "your question"  (the question is empty)')
        return EXIT_USAGE
    context = run_context(args)
    ensure_backends(context)
    if args.json:
        show: Callable[[dict[str, Any]], None] = lambda e: print(json.dumps(e), flush=True)  # noqa: E731
    else:
        show = ProgressPrinter()
    events: list[dict[str, Any]] = []

    def render(event: dict[str, Any]) -> None:
        events.append(event)
        show(event)

    try:
        asyncio.run(run_question(question, context, render))
    except (BackendUnavailableError, ConfigurationError, RoutingTableError):
        raise
    except Exception as error:
        _say(f"run failed: {type(error).__name__}: {error}")
        return EXIT_RUN
    if args.timeline:
        _say("\n" + render_text(run_spans(events)))
    return 0


def cmd_serve_local(args: argparse.Namespace) -> int:
    context = Context()
    port = args.port or context.embedded_port
    server = start_server(port, _say)
    if server.process is None:
        return 0
    _say(f"serving models {server.base_url} (log: {server.log_path}); Ctrl-C stops it")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        _say("stopping the embedded vLLM ...")
        server.stop()
        return 0
    _say(f"vLLM exited with code {server.process.returncode}; see {server.log_path}")
    return EXIT_BACKEND


def cmd_stop_local(args: argparse.Namespace) -> int:
    server = EmbeddedServer(port=args.port or Context().embedded_port)
    if not server.pid_path.exists():
        _say(f"no embedded vLLM started by expressway on port {server.port}")
        return 0
    server.stop()
    _say(f"stopped the embedded vLLM on port {server.port}")
    return 0


def _route_turn(raw: dict[str, Any]) -> tuple[str, str]:
    text, previous = raw["text"], raw.get("previous", "")
    if not isinstance(text, str) or not isinstance(previous, str):
        raise TypeError("`text` and `previous` must be strings")
    return text, previous


def cmd_route(args: argparse.Namespace) -> int:
    if args.file:
        try:
            turns = read_json_lines(
                args.file, _route_turn, '{"text": "..."} or {"text": "...", "previous": "..."}'
            )
        except ValueError as error:
            _say(f"route: {error}")
            return EXIT_USAGE
    elif args.text:
        turns = [(" ".join(args.text), args.previous)]
    else:
        _say('usage: expressway route "text" [--json] | expressway route --file F.jsonl')
        return EXIT_USAGE
    for text, previous in turns:
        route = classify_turn(text, previous)
        if args.json:
            print(json.dumps(route.__dict__))
        else:
            print(f"{route.task:<15} {route.tier:<9} {route.confidence:.2f}  {text[:70]}")
    return 0


def cmd_check_tools(args: argparse.Namespace) -> int:
    """The fork check (app/check_tools.py): plan, call and answer with the module's tools."""
    from app import check_tools

    context = run_context(args)
    try:
        tools = check_tools.load_tools(args.tools) if args.tools else []
        questions = check_tools.load_questions(args.questions)[: args.limit or None]
    except check_tools.CheckInputError as error:
        _say(f"check-tools: {error}")
        return EXIT_USAGE
    if not tools and not context.mcp_config:
        _say("check-tools: give --tools MODULE_OR_FILE, or set EXPRESSWAY_MCP_CONFIG (or both)")
        return EXIT_USAGE
    ensure_backends(context)
    mcp = f" and the MCP servers of {context.mcp_config}" if context.mcp_config else ""
    _say(f"checking {len(questions)} questions with {', '.join(t.name for t in tools)}{mcp}")
    number = 0

    def show(row: dict[str, Any]) -> None:
        nonlocal number
        number += 1
        if not args.json:
            print("\n".join(check_tools.question_lines(row, number)), flush=True)

    try:
        report = asyncio.run(check_tools.run_check(tools, questions, context, show))
    except check_tools.CheckInputError as error:
        _say(f"check-tools: {error}")
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report))
    else:
        print("\n".join(check_tools.summary_lines(report)))
    goals_met = all(goal["met"] for goal in report["totals"]["goals"].values())
    return EXIT_RUN if args.strict and not goals_met else 0


BENCHMARKS = (
    "fanout",
    "eager",
    "stream",
    "route",
    "e2e",
    "serving",
    "load",
    "durability",
    "mcp_calls",
    "tool_choice",
)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run bench/<name>.py; its main(argv) returns one JSON-serializable report."""
    import importlib

    if args.name is None:
        if {"-h", "--help"} & set(args.extra):
            print(args.usage())
            return 0
        _say(args.usage())
        return EXIT_USAGE
    report = importlib.import_module(f"bench.{args.name}").main(args.extra)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="expressway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ask = commands.add_parser("ask", help="answer a question, streaming tokens and progress")
    ask.add_argument("question", nargs="*", help="the question")
    ask.add_argument("--json", action="store_true", help="print one JSON event per line")
    ask.add_argument("--mode", choices=["compiler", "parallel_calls"], help="execution mode")
    ask.add_argument("--tier", help="force a tier (fast, frontier or one the table adds)")
    ask.add_argument(
        "--timeline", action="store_true", help="draw the run as a waterfall on stderr at the end"
    )
    ask.set_defaults(handler=cmd_ask)

    serve = commands.add_parser("serve-local", help="run the embedded vLLM until Ctrl-C")
    serve.add_argument("--port", type=int, help="default: EXPRESSWAY_EMBEDDED_PORT or 8000")
    serve.set_defaults(handler=cmd_serve_local)

    stop = commands.add_parser("stop-local", help="stop an embedded vLLM left running by ask")
    stop.add_argument("--port", type=int)
    stop.set_defaults(handler=cmd_stop_local)

    route = commands.add_parser("route", help="show the routing decision for text")
    route.add_argument("text", nargs="*")
    route.add_argument(
        "--previous", default="", help="the conversation's previous request (for a follow-up)"
    )
    route.add_argument("--file", help="JSON lines with a `text` field (and `previous`, optional)")
    route.add_argument("--json", action="store_true")
    route.set_defaults(handler=cmd_route)

    check = commands.add_parser(
        "check-tools", help="the fork check: plan, call and answer with your own tools"
    )
    check.add_argument("--tools", help="a .py file or module of your tools (MCP: see README)")
    check.add_argument("--questions", required=True, help="JSON lines: question, expected_tools")
    check.add_argument("--json", action="store_true", help="one JSON report on stdout")
    check.add_argument("--limit", type=int, default=0, help="check only the first N questions")
    check.add_argument("--mode", choices=["compiler", "parallel_calls"], help="execution mode")
    check.add_argument("--tier", help="force a tier for every question")
    check.add_argument("--strict", action="store_true", help="exit 4 when a goal is not met")
    check.set_defaults(handler=cmd_check_tools)

    # No -h of its own: `bench e2e --help` reaches the benchmark's parser and lists its options.
    bench = commands.add_parser(
        "bench",
        help="run a benchmark and print its JSON report",
        add_help=False,
        usage="expressway bench NAME [--json] [the benchmark's options; NAME --help lists them]",
    )
    bench.add_argument("name", choices=BENCHMARKS, nargs="?")
    bench.add_argument("--json", action="store_true", help="one line of JSON")
    bench.set_defaults(handler=cmd_bench, usage=bench.format_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # A benchmark's own options (e.g. `bench fanout --sizes 8,64`) pass through to it.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return args.handler(args)
    except (ConfigurationError, RoutingTableError) as error:
        _say(f"configuration error: {error}")
        return EXIT_USAGE
    except (BackendUnavailableError, EmbeddedBackendError) as error:
        _say(f"backend error: {error}")
        return EXIT_BACKEND
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
