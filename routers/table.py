"""The routing table: task -> tier, model and options, loaded from a YAML file the user edits."""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

import yaml

from expressway.context import TierName as Tier

Task = Literal[
    "chat", "classification", "extraction", "summarization", "lookup", "reasoning", "code"
]
DEFAULT_TABLE = Path(__file__).parent / "routing_table.yaml"


class RoutingTableError(ValueError):
    """The routing table cannot be read; the message names the file and the entry."""


@dataclass(frozen=True)
class TaskRoute:
    tier: Tier
    use_tools: bool
    max_tokens: int
    model: str = ""


@dataclass(frozen=True)
class RoutingTable:
    tasks: dict[str, TaskRoute]
    escalate_below_confidence: float

    def tier_for(self, task: str, confidence: float, threshold: float | None = None) -> Tier:
        """The task's tier, or frontier when the decision is less confident than the threshold
        (the table's own unless one is given, e.g. to draw the quality/cost curve)."""
        cutoff = self.escalate_below_confidence if threshold is None else threshold
        return "frontier" if confidence < cutoff else self.tasks[task].tier


@lru_cache(maxsize=8)
def load_routing_table(path: Path = DEFAULT_TABLE) -> RoutingTable:
    """Parse and check the table; every task must be present with a valid tier."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
        entries = raw["tasks"]
        tasks = {name: TaskRoute(**entries[name]) for name in get_args(Task)}
        threshold = float(raw.get("escalate_below_confidence", 0.0))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise RoutingTableError(
            f"routing table {path} is unreadable ({type(error).__name__}: {error}); it needs a "
            f"`tasks:` entry for each of {', '.join(get_args(Task))} with tier, use_tools and "
            f"max_tokens (see routers/routing_table.yaml)"
        ) from error
    for name, route in tasks.items():
        if route.tier not in get_args(Tier):
            raise RoutingTableError(f"routing table {path}: task {name!r} has tier {route.tier!r}")
    return RoutingTable(tasks=tasks, escalate_below_confidence=threshold)
