"""The routing table: task -> tier, model and options, and any tiers beyond fast and frontier,
loaded from a YAML file the user edits."""

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from expressway.context import ADDED_TIERS, BUILT_IN_TIERS, TierEndpoint
from expressway.context import TierName as Tier

Task = Literal[
    "chat",
    "classification",
    "extraction",
    "summarization",
    "writing",
    "lookup",
    "reasoning",
    "code",
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
    require_tools: bool = False
    answer_instructions: str = ""


@dataclass(frozen=True)
class RoutingTable:
    tasks: dict[str, TaskRoute]
    escalate_below_confidence: float
    tiers: dict[str, TierEndpoint] = field(default_factory=dict)  # added tiers only

    def tier_for(self, task: str, confidence: float, threshold: float | None = None) -> Tier:
        """The task's tier, or frontier when the decision is less confident than the threshold
        (the table's own unless one is given, e.g. to draw the quality/cost curve)."""
        cutoff = self.escalate_below_confidence if threshold is None else threshold
        return "frontier" if confidence < cutoff else self.tasks[task].tier


_TIER_NAME = re.compile(r"[a-z][a-z0-9_]*")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _added_tiers(raw: Any, path: Path) -> dict[str, TierEndpoint]:
    """Check the optional `tiers:` section: name -> {model, base_url, api_key_env}."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RoutingTableError(f"routing table {path}: `tiers:` must map tier names to entries")
    tiers = {}
    for name, entry in raw.items():
        where = f"routing table {path}: tier {name!r}"
        if name in BUILT_IN_TIERS:
            raise RoutingTableError(
                f"{where} is built in: set it with EXPRESSWAY_{str(name).upper()}_BASE_URL, "
                "_MODEL and _API_KEY (see .env.example), or give the new tier another name"
            )
        if not isinstance(name, str) or not _TIER_NAME.fullmatch(name):
            raise RoutingTableError(f"{where}: use lower-case letters, digits and _ in tier names")
        if not isinstance(entry, dict) or set(entry) - {"model", "base_url", "api_key_env"}:
            raise RoutingTableError(
                f"{where} must be {{model: NAME, base_url: URL, api_key_env: VARIABLE}} "
                f"(base_url and api_key_env optional), got {entry!r}"
            )
        model, url = entry.get("model"), entry.get("base_url") or ""
        key_env = entry.get("api_key_env") or ""
        if not isinstance(model, str) or not model.strip():
            raise RoutingTableError(f"{where} needs `model:`, the model name its server serves")
        if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
            raise RoutingTableError(
                f"{where}: base_url {url!r} must start with http:// or https:// (leave it out "
                "for the embedded server)"
            )
        if not isinstance(key_env, str) or (key_env and not _VARIABLE.fullmatch(key_env)):
            raise RoutingTableError(
                f"{where}: api_key_env {key_env!r} must name an environment variable (the key "
                "itself never goes in the table)"
            )
        tiers[name] = TierEndpoint(model=model.strip(), base_url=url, api_key_env=key_env)
    return tiers


@lru_cache(maxsize=8)
def load_routing_table(path: Path = DEFAULT_TABLE) -> RoutingTable:
    """Parse and check the table (every task present with a known tier), and register its added
    tiers so every run can reach them (expressway.context.ADDED_TIERS)."""
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
    tiers = _added_tiers(raw.get("tiers"), path)
    for name, route in tasks.items():
        if not isinstance(route.answer_instructions, str):
            raise RoutingTableError(
                f"routing table {path}: task {name!r} has answer_instructions "
                f"{route.answer_instructions!r}; write it as text"
            )
        if route.tier not in (*BUILT_IN_TIERS, *tiers):
            raise RoutingTableError(
                f"routing table {path}: task {name!r} has tier {route.tier!r}; the tiers are "
                f"{', '.join((*BUILT_IN_TIERS, *tiers))} (add one under `tiers:`)"
            )
    ADDED_TIERS.update(tiers)
    return RoutingTable(tasks=tasks, escalate_below_confidence=threshold, tiers=tiers)
