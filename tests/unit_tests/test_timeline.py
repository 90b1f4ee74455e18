"""The run waterfall: spans from events, and the critical path walked back from the end."""

from expressway.timeline import render_text, run_spans


def _event(type_: str, t: float, **fields) -> dict:
    return {"type": type_, "v": 1, "t": t, **fields}


EVENTS = [
    _event("run.started", 0.0),
    _event("route.decided", 0.001, task="lookup", tier="fast"),
    _event("plan.started", 0.002),
    _event("plan.task", 0.30, task_id=1, tool="lookup", args={}, deps=[]),
    _event("task.started", 0.30, task_id=1, tool="lookup", args={}),
    _event("plan.task", 0.40, task_id=2, tool="lookup", args={}, deps=[]),
    _event("task.started", 0.40, task_id=2, tool="lookup", args={}),
    _event("plan.task", 0.50, task_id=3, tool="add", args={}, deps=[1, 2]),
    _event("plan.finished", 0.55, steps=3, errors=0, from_cache=False),
    _event("task.finished", 1.30, task_id=1, tool="lookup", status="ok", duration_s=1.0),
    _event("task.finished", 0.90, task_id=2, tool="lookup", status="ok", duration_s=0.5),
    _event("task.started", 1.30, task_id=3, tool="add", args={}),
    _event("task.finished", 1.35, task_id=3, tool="add", status="ok", duration_s=0.05),
    _event("answer.started", 1.35, tier="fast"),
    _event("token", 1.50, text="It", tier="fast", model="fast"),
    _event("run.finished", 1.80, timings={}),
]


def test_the_critical_path_runs_through_the_slow_task_and_its_plan_line() -> None:
    spans = {span.label: span for span in run_spans(EVENTS)}
    assert set(spans) == {
        "route",
        "plan",
        "task 1 lookup",
        "task 2 lookup",
        "task 3 add",
        "answer prefill",
        "answer tokens",
    }
    critical = {label for label, span in spans.items() if span.critical}
    # Task 1 (its line came at 0.30, it ended last of 3's inputs) decided when task 3 started.
    assert critical == {
        "route",
        "plan",
        "task 1 lookup",
        "task 3 add",
        "answer prefill",
        "answer tokens",
    }
    assert spans["answer prefill"].seconds == 1.50 - 1.35


def test_a_speculated_task_starts_at_its_early_start_and_hangs_off_the_route() -> None:
    events = [dict(event) for event in EVENTS]
    events[4] = {**events[4], "speculated_at": 0.002}  # task 1 started from a cached template
    spans = {span.label: span for span in run_spans(events)}
    assert spans["task 1 lookup"].start == 0.002 and spans["task 1 lookup"].speculated
    assert not spans["plan"].critical  # the plan no longer delayed the slow task
    text = render_text(list(spans.values()))
    assert "(speculated)" in text and "critical path" in text
