"""A run as a waterfall: route, plan stream, each task, answer prefill and answer tokens, with the
critical path marked (the chain of spans that decided when the run ended).

Built from the run's events alone (the same ones `astream`, the server and `expressway ask --json`
give), so it works on a recorded run as well as a live one.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Two spans closer than this are taken as one causing the other (event stamps are microseconds).
_TOUCHING_S = 0.002


@dataclass
class Span:
    """One bar of the waterfall; times are seconds since the run started."""

    label: str
    kind: str  # route, plan, task, prefill, tokens
    start: float
    end: float
    task_id: int | None = None
    deps: list[int] = field(default_factory=list)
    speculated: bool = False
    critical: bool = False

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


def run_spans(events: Iterable[Mapping[str, Any]]) -> list[Span]:
    """The spans of one run, in start order, with the critical path marked."""
    events = list(events)
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    route_end = by_type.get("route.decided", [{"t": 0.0}])[0]["t"]
    spans = [Span("route", "route", 0.0, route_end)]
    planned = {event["task_id"]: event for event in by_type.get("plan.task", [])}
    finished = {event["task_id"]: event["t"] for event in by_type.get("task.finished", [])}
    plan_ends = by_type.get("plan.finished", [])
    for started, ended in zip(by_type.get("plan.started", []), plan_ends, strict=False):
        spans.append(Span("plan", "plan", started["t"], ended["t"]))
    for started in by_type.get("task.started", []):
        task_id = started["task_id"]
        begin = started.get("speculated_at", started["t"])
        spans.append(
            Span(
                f"task {task_id} {started['tool']}",
                "task",
                begin,
                finished.get(task_id, begin),
                task_id,
                list(planned.get(task_id, {}).get("deps", [])),
                "speculated_at" in started,
            )
        )
    answer_start = next((e["t"] for e in by_type.get("answer.started", [])), None)
    first_token = next((e["t"] for e in by_type.get("token", [])), None)
    end = next((e["t"] for e in by_type.get("run.finished", [])), None)
    if answer_start is not None and first_token is not None and end is not None:
        spans.append(Span("answer prefill", "prefill", answer_start, first_token))
        spans.append(Span("answer tokens", "tokens", first_token, end))
    _mark_critical_path(spans, planned)
    return sorted(spans, key=lambda span: (span.start, span.end))


def _mark_critical_path(spans: list[Span], planned: Mapping[int, Mapping[str, Any]]) -> None:
    """Walk back from the span that ended last, each time to the span whose end let this one
    start: tokens <- prefill <- the last task or plan to end <- a task's latest input (its plan
    line or a dependency) <- ... <- route."""
    route = spans[0]
    current: Span | None = max(spans, key=lambda span: span.end)
    while current is not None and current is not route and not current.critical:
        current.critical = True
        current = _cause(current, spans, planned) or route
    route.critical = True


def _cause(span: Span, spans: list[Span], planned: Mapping[int, Mapping[str, Any]]) -> Span | None:
    route = spans[0]
    if span.kind == "tokens":
        return next((s for s in spans if s.kind == "prefill"), None)
    if span.kind == "task" and span.speculated:
        return route  # started as planning began, from a cached template
    if span.kind == "task":
        tasks = {s.task_id: s for s in spans if s.kind == "task"}
        line = planned.get(span.task_id or -1, {}).get("t", span.start)
        plan = next((s for s in spans if s.kind == "plan" and s.start <= line <= s.end), None)
        # The plan stream "ends", for this task, when its line arrives.
        inputs = [(line, plan)] + [(tasks[d].end, tasks[d]) for d in span.deps if d in tasks]
        return max(inputs, key=lambda pair: pair[0])[1]
    earlier = [s for s in spans if s is not span and s.end <= span.start + _TOUCHING_S]
    return max(earlier, key=lambda s: s.end) if earlier else None


def render_text(spans: list[Span], width: int = 56) -> str:
    """The waterfall for a terminal: '#' marks the critical path, '=' the rest."""
    total = max((span.end for span in spans), default=0.0) or 1.0
    lines = []
    for span in spans:
        first = int(span.start / total * width)
        length = max(1, round(span.seconds / total * width))
        bar = " " * first + ("#" if span.critical else "=") * length
        note = " (speculated)" if span.speculated else ""
        lines.append(
            f"{span.start:7.3f}s |{bar:<{width}}| {span.label:<22} {span.seconds:7.3f}s"
            f"{' *' if span.critical else ''}{note}"
        )
    lines.append("'#' and '*': the critical path, the chain that decided when the run ended")
    return "\n".join(lines)
