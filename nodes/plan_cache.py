"""Plan templates from finished runs, so a request of the same shape can start its tools early.

When a run's plan succeeds, the words of the question that its tool arguments copied (a city, an
order number, a product) become slots: "What time is it in Tokyo and in Toronto?" with
current_time("Asia/Tokyo"), current_time("America/Toronto") becomes the template
["what time is it in ", " and in ", "?"] -> current_time("Asia/⟦0⟧"), current_time("America/⟦1⟧").
A later question that matches the pattern gets the template's calls with its own words filled in.

The templates live in a LangGraph store (the server's store under `langgraph dev` / LangGraph
server, so replicas share them; a process-wide in-memory store otherwise), one namespace per tool
set. How they are used is the planner node's business (nodes/plan_and_schedule.py): the filled-in
calls of read-only tools are started speculatively and kept only if the real plan makes the same
call, so a wrong guess costs a cancelled call, never a wrong answer.
"""

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

Steps = list[tuple[str, dict[str, Any]]]
_WORD = re.compile(r"[\w][\w'./:@-]*[\w]|\w")
# Where a slot's words go in an argument: "Asia/⟦0⟧".
_SLOT = re.compile(r"⟦(\d+)⟧")
MAX_SLOT_WORDS = 4
MAX_TEMPLATES = 500  # templates read per lookup
# A template whose guesses were all used this many times may skip the planner in "trust" mode.
TRUSTED_AFTER = 2
_PROCESS_STORE = InMemoryStore()


@dataclass(frozen=True)
class Match:
    """A stored template that fits a question, with its calls filled in for that question."""

    key: str
    calls: Steps
    confirmed: int


def normalize(question: str) -> str:
    return " ".join(question.split())


def _entity_like(text: str, at_start: bool) -> bool:
    """A name, a code or a number: capitalized (not just as the question's first word), or with
    a digit. Plain words stay literal, so a template does not match questions of other shapes."""
    return any(char.isdigit() for char in text) or any(
        word[0].isupper() for word in text.split()[1 if at_start else 0 :]
    )


def _slots(question: str, steps: Steps) -> list[str]:
    """Entity-like word spans of the question (longest first, not overlapping) that some
    argument copies."""
    values = " ".join(str(value) for _, args in steps for value in args.values()).lower()
    words = [match for match in _WORD.finditer(question)]
    taken: set[int] = set()
    spans: list[tuple[int, int]] = []
    for size in range(MAX_SLOT_WORDS, 0, -1):
        for start in range(len(words) - size + 1):
            indices = set(range(start, start + size))
            text = question[words[start].start() : words[start + size - 1].end()]
            lowered = text.lower()
            # Cheapest test first: most spans are copied by no argument at all.
            if (
                lowered not in values
                or indices & taken
                or not _entity_like(text, at_start=start == 0)
                or not re.search(rf"(?<!\w){re.escape(lowered)}(?!\w)", values)
            ):
                continue
            taken |= indices
            spans.append((words[start].start(), words[start + size - 1].end()))
    return [question[start:end] for start, end in sorted(spans)]


def _fill_marks(value: Any, slots: Sequence[str]) -> Any:
    """An argument with each slot's text replaced by its mark, a number by its slot."""
    if isinstance(value, str):
        for index, slot in sorted(enumerate(slots), key=lambda pair: -len(pair[1])):
            value = re.sub(re.escape(slot), f"⟦{index}⟧", value, flags=re.I)
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        for index, slot in enumerate(slots):
            if slot == str(value):
                return {"slot": index, "type": type(value).__name__}
    return value


def make_template(question: str, steps: Steps) -> tuple[list[str], list[dict[str, Any]]]:
    """The literal parts around the slots of a question of this shape (lowercase; a question
    matches when it is the parts with some words between each two), and the steps with slot
    marks."""
    question = normalize(question)
    slots = _slots(question, steps)
    parts, rest = [], question
    for slot in slots:
        before, _, rest = rest.partition(slot)
        parts.append(before.lower())
    parts.append(rest.lower())
    marked = [
        {"tool": tool, "args": {k: _fill_marks(v, slots) for k, v in args.items()}}
        for tool, args in steps
    ]
    return parts, marked


def match_parts(parts: Sequence[str], question: str) -> list[str] | None:
    """The words of `question` in each slot when it is parts[0] + slot + parts[1] + ... +
    parts[-1] (ignoring case; no slot empty), taking each part at its first place. That finds a
    split whenever there is one, in time linear in the question: a regular expression of many
    lazy groups, which the templates were before, took seconds on a long near-miss question."""
    text = question.lower()
    if len(text) != len(question) or not text.startswith(parts[0]):
        return None  # a lowercase form of another length has no positions to cut the question at
    end = len(text) - len(parts[-1])
    if len(parts) == 1:
        return [] if text == parts[0] else None
    if not text.endswith(parts[-1]):
        return None
    words, position = [], len(parts[0])
    for part in parts[1:-1]:
        found = text.find(part, position + 1)
        if found == -1 or found + len(part) >= end:
            return None
        words.append(question[position:found])
        position = found + len(part)
    if end <= position:
        return None
    words.append(question[position:end])
    return words


def _fill(value: Any, words: Sequence[str]) -> Any:
    if isinstance(value, dict) and "slot" in value:
        text = words[value["slot"]]
        return int(text) if value["type"] == "int" else float(text)
    if isinstance(value, str):
        return _SLOT.sub(lambda match: words[int(match.group(1))], value)
    return value


class PlanCache:
    """Plan templates of one tool set in a LangGraph store."""

    def __init__(self, store: BaseStore | None, tools: Sequence[BaseTool]) -> None:
        self.store = store or _PROCESS_STORE
        signature = json.dumps(sorted([tool.name, tool.description] for tool in tools))
        self.namespace = (
            "expressway",
            "plan_templates",
            hashlib.sha256(signature.encode()).hexdigest()[:16],
        )

    async def lookup(self, question: str) -> Match | None:
        """The most specific stored template whose parts the question matches, filled in."""
        question = normalize(question)
        best: tuple[int, Match] | None = None
        for item in await self.store.asearch(self.namespace, limit=MAX_TEMPLATES):
            parts = item.value.get("parts")
            words = match_parts(parts, question) if parts else None
            if words is None:
                continue
            try:
                calls = [
                    (step["tool"], {k: _fill(v, words) for k, v in step["args"].items()})
                    for step in item.value["steps"]
                ]
            except (ValueError, IndexError):  # a number slot matched words: not this template
                continue
            literal = sum(len(part) for part in parts)
            if best is None or literal > best[0]:
                best = (literal, Match(item.key, calls, item.value.get("confirmed", 0)))
        return best[1] if best else None

    async def remember(self, question: str, steps: Steps) -> None:
        """Store (or refresh) the template of a question whose plan succeeded."""
        if not steps:
            return
        parts, marked = make_template(question, steps)
        key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
        previous = await self.store.aget(self.namespace, key)
        confirmed = previous.value.get("confirmed", 0) if previous else 0
        await self.store.aput(
            self.namespace, key, {"parts": parts, "steps": marked, "confirmed": confirmed}
        )

    async def confirm(self, key: str) -> None:
        """Count a template whose every guessed call the real plan made."""
        item = await self.store.aget(self.namespace, key)
        if item is not None:
            value = dict(item.value)
            value["confirmed"] = value.get("confirmed", 0) + 1
            await self.store.aput(self.namespace, key, value)
