"""Classifies a request into a task and a tier in microseconds, without an LLM call.

This first version scores keyword patterns per task; the routing table maps the task to a tier.
"""

import re
import time
from dataclasses import dataclass
from pathlib import Path

from routers.table import DEFAULT_TABLE, Task, Tier, load_routing_table

# Each task's cue words; a request's score for a task is the number of cues it contains.
_CUES: dict[Task, re.Pattern[str]] = {
    "code": re.compile(
        r"\b(code|function|python|javascript|typescript|sql query for|regex|bug|compile|script|"
        r"class|implement|refactor|stack trace|exception)\b",
        re.I,
    ),
    "summarization": re.compile(
        r"\b(summari[sz]e|summary|tl;?dr|condense|key points|recap)\b", re.I
    ),
    "extraction": re.compile(
        r"\b(extract|pull out|list (all|the) (names|dates|emails)|parse|fields?|json from)\b", re.I
    ),
    "classification": re.compile(
        r"\b(classify|categori[sz]e|label|sentiment|is this (spam|positive|negative)|"
        r"which category)\b",
        re.I,
    ),
    "reasoning": re.compile(
        r"\b(why|explain|compare|trade-?offs?|plan|strategy|should (i|we)|prove|analy[sz]e|"
        r"pros and cons|step by step)\b",
        re.I,
    ),
    "lookup": re.compile(
        r"\b(how many|how much|what time|when|where|who|price|cost|status|order|stock|policy|"
        r"shipping|warranty|return|hours|timezone|time in|email of|total|sum|average|convert)\b",
        re.I,
    ),
}


@dataclass(frozen=True)
class Route:
    """A routing decision: what kind of request it is and which tier answers it."""

    task: Task
    tier: Tier
    confidence: float
    latency_ms: float
    use_tools: bool
    max_tokens: int
    model: str = ""


def classify(text: str, table_path: Path = DEFAULT_TABLE) -> Route:
    """Label `text` with a task and the tier the routing table gives it."""
    started = time.perf_counter()
    table = load_routing_table(table_path)
    scores = {task: len(pattern.findall(text)) for task, pattern in _CUES.items()}
    total = sum(scores.values())
    task: Task = max(scores, key=scores.__getitem__) if total else "lookup"
    confidence = scores[task] / total if total else 0.0
    route = table.tasks[task]
    tier: Tier = route.tier
    if confidence < table.escalate_below_confidence:
        tier = "frontier"
    return Route(
        task=task,
        tier=tier,
        confidence=round(confidence, 3),
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        use_tools=route.use_tools,
        max_tokens=route.max_tokens,
        model=route.model,
    )
