"""The typed run configuration (LangGraph `context_schema`), with defaults from the environment."""

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args

ExecutionMode = Literal["compiler", "parallel_calls"]
PlanCacheMode = Literal["off", "speculate", "trust"]
BUILT_IN_TIERS = ("fast", "frontier")
InFlightSideEffects = Literal["report", "retry"]
TierName = str  # a built-in tier, or one added in the routing table's `tiers:` section
ENV_PREFIX = "EXPRESSWAY_"
ENCODER_DEPTH = 6  # layers of the sentence encoder, all-MiniLM-L6-v2 (expressway/encoder.py)


class ConfigurationError(ValueError):
    """A setting is missing or wrong; the message names the variable and the fix."""


@dataclass(frozen=True)
class TierEndpoint:
    """A tier added in the routing table's `tiers:` section (the built-in tiers are the Context's
    fast_* and frontier_* fields)."""

    model: str
    base_url: str = ""  # empty: the embedded server
    api_key_env: str = ""  # the variable holding its API key, read when its client is built


# The routing table (routers/table.py) registers its added tiers here when it is loaded, which
# build_graph does: the core cannot import the routers, and every run reaches the same tiers.
ADDED_TIERS: dict[str, TierEndpoint] = {}


_KIND_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _parse(name: str, raw: str, kind: type) -> object:
    try:
        if kind is bool:
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes"}
        return kind(raw)
    except ValueError as error:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}; "
            "fix it in your environment or .env (see .env.example)"
        ) from error


@dataclass(kw_only=True)
class Context:
    """Everything a run can be configured with. Each field left at its default is read from the
    environment variable EXPRESSWAY_<FIELD NAME> (see .env.example)."""

    fast_base_url: str = field(
        default="",
        metadata={
            "description": "OpenAI-compatible base URL of the fast tier (ending in /v1). "
            "Empty means the embedded local vLLM."
        },
    )
    fast_model: str = field(
        default="fast", metadata={"description": "Model name served for the fast tier."}
    )
    frontier_base_url: str = field(
        default="",
        metadata={
            "description": "OpenAI-compatible base URL of the frontier tier (ending in /v1). "
            "Empty means the embedded local vLLM."
        },
    )
    frontier_model: str = field(
        default="frontier", metadata={"description": "Model name served for the frontier tier."}
    )
    force_tier: str = field(
        default="",
        metadata={
            "description": "Send every request to this tier ('fast', 'frontier' or one the "
            "routing table's `tiers:` section adds)."
        },
    )
    execution_mode: str = field(
        default="compiler",
        metadata={
            "description": "'compiler': a streamed task plan whose tasks start as soon as their "
            "inputs exist; 'parallel_calls': one model turn of tool calls run concurrently."
        },
    )
    plan_cache: str = field(
        default="speculate",
        metadata={
            "description": "Plan templates from finished runs: 'speculate' starts a matching "
            "template's read-only calls while the planner runs and keeps only those the plan "
            "makes (lossless); 'trust' also skips the planner on a template confirmed twice "
            "whose tools are all read-only (lossy); 'off' disables both."
        },
    )
    prefill_answer_early: bool = field(
        default=True,
        metadata={
            "description": "While tools run, have the answering tier compute the answer "
            "prompt up to the tool results (again as results arrive in task order), so its "
            "prefix cache holds it for the answer."
        },
    )
    model_timeout_s: float = field(
        default=120.0,
        metadata={"description": "Seconds one model call may take before it counts as failed."},
    )
    tool_timeout_s: float = field(
        default=30.0, metadata={"description": "Seconds one tool call may take."}
    )
    max_concurrency: int = field(
        default=64, metadata={"description": "Most tool calls running at once in one run."}
    )
    max_plan_tasks: int = field(
        default=16, metadata={"description": "Most tasks in one plan (or one turn of calls)."}
    )
    max_replans: int = field(
        default=1, metadata={"description": "How many times a failed plan may be replanned."}
    )
    in_flight_side_effects: str = field(
        default="report",
        metadata={
            "description": "What a run resumed after a crash does with a call to a tool with side "
            "effects that was running when the process stopped: 'report' (not run again; a "
            "task.in_doubt event and the answer's results say it may or may not have taken "
            "effect) or 'retry' (run it again, reported the same way)."
        },
    )
    max_question_chars: int = field(
        default=20_000,
        metadata={"description": "Longest question accepted; longer ones fail with a clear error."},
    )
    token_merge_window_ms: float = field(
        default=100.0,
        metadata={
            "description": "Answer tokens that back up go out merged, over at most this many "
            "milliseconds of the answer: on a busy process the answer's model stream is read "
            "at most once per window (fewer chunks to convert and relay), and the HTTP app's "
            "fast route sends tokens already waiting for a slow client as one event. A run on "
            "an idle process whose client keeps up gets every token at once. 0: neither."
        },
    )
    tool_ranking_layers: int = field(
        default=ENCODER_DEPTH,
        metadata={
            "description": "Encoder layers (1-6) the planner ranks tools with, to name the tools "
            "that fit a question and pick its examples: 6 found the needed tools best on tool "
            "sets nobody wrote it for (`expressway bench tool_choice`); fewer cost less CPU "
            "per question (3: about half)."
        },
    )
    busy_stream_interval: int = field(
        default=8,
        metadata={
            "description": "Model requests made while the process is busy (its streams fall "
            "behind) ask a vLLM backend to send this many tokens per chunk (vLLM's per-request "
            "`stream_interval`; the first token still comes at once), so a loaded server reads "
            "and converts fewer chunks per run. Sent only to servers whose model list says "
            "vLLM. 1: every token as it is decoded."
        },
    )
    embedded_port: int = field(
        default=8000, metadata={"description": "Port of the embedded local vLLM server."}
    )
    mcp_config: str = field(
        default="",
        metadata={
            "description": "Path of a JSON file in the standard `mcpServers` format: the tools of "
            "those MCP servers join the run's tools (each server starts on first use)."
        },
    )
    mcp_startup_timeout_s: float = field(
        default=30.0,
        metadata={"description": "Seconds an MCP server may take to start and list its tools."},
    )

    def __post_init__(self) -> None:
        for spec in fields(self):
            if getattr(self, spec.name) != spec.default:
                continue
            raw = os.environ.get(f"{ENV_PREFIX}{spec.name.upper()}")
            if raw not in (None, ""):
                setattr(self, spec.name, _parse(spec.name, raw, type(spec.default)))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigurationError naming the variable for any value that cannot work."""
        self._check_types()
        if self.execution_mode not in get_args(ExecutionMode):
            raise ConfigurationError(
                f"EXPRESSWAY_EXECUTION_MODE={self.execution_mode!r}: "
                f"use one of {', '.join(get_args(ExecutionMode))}"
            )
        if self.plan_cache not in get_args(PlanCacheMode):
            raise ConfigurationError(
                f"EXPRESSWAY_PLAN_CACHE={self.plan_cache!r}: "
                f"use one of {', '.join(get_args(PlanCacheMode))}"
            )
        if self.in_flight_side_effects not in get_args(InFlightSideEffects):
            raise ConfigurationError(
                f"EXPRESSWAY_IN_FLIGHT_SIDE_EFFECTS={self.in_flight_side_effects!r}: "
                f"use one of {', '.join(get_args(InFlightSideEffects))}"
            )
        if self.force_tier and self.force_tier not in self.tier_names():
            raise ConfigurationError(
                f"EXPRESSWAY_FORCE_TIER (or `ask --tier`)={self.force_tier!r}: use one of "
                f"{', '.join(self.tier_names())} or leave it empty"
            )
        for name in (
            "model_timeout_s",
            "tool_timeout_s",
            "max_concurrency",
            "max_plan_tasks",
            "max_question_chars",
            "mcp_startup_timeout_s",
            "busy_stream_interval",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"EXPRESSWAY_{name.upper()} must be greater than 0")
        if self.max_replans < 0:
            raise ConfigurationError("EXPRESSWAY_MAX_REPLANS must be 0 (never replan) or more")
        if not 1 <= self.embedded_port <= 65535:
            raise ConfigurationError(
                f"EXPRESSWAY_EMBEDDED_PORT={self.embedded_port}: use a port from 1 to 65535"
            )
        if not 1 <= self.tool_ranking_layers <= ENCODER_DEPTH:
            raise ConfigurationError(
                f"EXPRESSWAY_TOOL_RANKING_LAYERS={self.tool_ranking_layers}: use 1 to "
                f"{ENCODER_DEPTH} (the sentence encoder has {ENCODER_DEPTH} layers)"
            )
        if self.token_merge_window_ms < 0:
            raise ConfigurationError(
                "EXPRESSWAY_TOKEN_MERGE_WINDOW_MS must be 0 (never merge) or more"
            )
        for tier in BUILT_IN_TIERS:
            url = getattr(self, f"{tier}_base_url")
            if url and not url.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"EXPRESSWAY_{tier.upper()}_BASE_URL={url!r} must start with http:// or "
                    "https:// (for example http://gpu-host:8000/v1)"
                )

        if self.mcp_config and not Path(self.mcp_config).is_file():
            raise ConfigurationError(
                f"EXPRESSWAY_MCP_CONFIG={self.mcp_config!r} is not a file: give the path of a "
                'JSON file like {"mcpServers": {"name": {"command": "...", "args": [...]}}}'
            )

    def _check_types(self) -> None:
        """Each value has its field's type. A run's context may come as JSON in an HTTP request,
        which LangGraph's server passes through unchecked ("5" for 5, null, true for 1)."""
        for spec in fields(self):
            value, kind = getattr(self, spec.name), type(spec.default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, spec.name, value)
            if type(value) is not kind:
                raise ConfigurationError(
                    f"{spec.name}={value!r} ({ENV_PREFIX}{spec.name.upper()}) must be "
                    f"{_KIND_NAMES[kind]}, not {type(value).__name__}"
                )
            if kind is float and not math.isfinite(value):
                raise ConfigurationError(
                    f"{ENV_PREFIX}{spec.name.upper()}={value}: use a finite number"
                )

    @property
    def embedded_base_url(self) -> str:
        return f"http://127.0.0.1:{self.embedded_port}/v1"

    def tier_names(self) -> tuple[TierName, ...]:
        return (*BUILT_IN_TIERS, *ADDED_TIERS)

    def added_tier(self, tier: TierName) -> TierEndpoint | None:
        """The routing table's entry for an added tier; None for a built-in one."""
        if tier in BUILT_IN_TIERS:
            return None
        if tier not in ADDED_TIERS:
            raise ConfigurationError(
                f"unknown tier {tier!r}: the tiers are {', '.join(self.tier_names())}; add one "
                "in the `tiers:` section of routers/routing_table.yaml"
            )
        return ADDED_TIERS[tier]

    def base_url(self, tier: TierName) -> str:
        """The tier's endpoint: its own URL, or the embedded server's when none is set."""
        return self.own_base_url(tier) or self.embedded_base_url

    def own_base_url(self, tier: TierName) -> str:
        added = self.added_tier(tier)
        return added.base_url if added else getattr(self, f"{tier}_base_url")

    def model_name(self, tier: TierName) -> str:
        added = self.added_tier(tier)
        return added.model if added else getattr(self, f"{tier}_model")

    def uses_embedded(self, tier: TierName) -> bool:
        return not self.own_base_url(tier)

    def api_key_env(self, tier: TierName) -> str:
        """The variable holding the tier's API key (empty: none)."""
        added = self.added_tier(tier)
        return added.api_key_env if added else f"{ENV_PREFIX}{tier.upper()}_API_KEY"

    def base_url_setting(self, tier: TierName) -> str:
        """Where the tier's URL is set, for error messages."""
        if self.added_tier(tier):
            return f"`base_url` of tier {tier!r} in the routing table"
        return f"{ENV_PREFIX}{tier.upper()}_BASE_URL"


# Variables read outside Context: the built-in tiers' API keys (read when a client is built), the
# embedded server's cache folder, and the integration tests' server.
OTHER_VARIABLES = frozenset(
    {
        f"{ENV_PREFIX}FAST_API_KEY",
        f"{ENV_PREFIX}FRONTIER_API_KEY",
        f"{ENV_PREFIX}CACHE_DIR",
        f"{ENV_PREFIX}TEST_EMBEDDED_PORT",
    }
)


def unknown_settings(environ: Mapping[str, str] = os.environ) -> list[str]:
    """A warning for each EXPRESSWAY_* variable nothing reads (a misspelled setting would
    otherwise be ignored without a word), naming the closest setting."""
    known = (
        {f"{ENV_PREFIX}{spec.name.upper()}" for spec in fields(Context)}
        | OTHER_VARIABLES
        | {tier.api_key_env for tier in ADDED_TIERS.values()}
    )
    warnings = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"{name} is not an Expressway setting and is ignored{hint}")
    return warnings
