"""The typed run configuration (LangGraph `context_schema`), with defaults from the environment."""

import os
from dataclasses import dataclass, field, fields
from typing import Literal, get_args

ExecutionMode = Literal["compiler", "parallel_calls"]
TierName = Literal["fast", "frontier"]
ENV_PREFIX = "EXPRESSWAY_"


class ConfigurationError(ValueError):
    """A setting is missing or wrong; the message names the variable and the fix."""


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
        metadata={"description": "Send every request to this tier ('fast' or 'frontier')."},
    )
    execution_mode: str = field(
        default="compiler",
        metadata={
            "description": "'compiler': a streamed task plan whose tasks start as soon as their "
            "inputs exist; 'parallel_calls': one model turn of tool calls run concurrently."
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
    max_question_chars: int = field(
        default=20_000,
        metadata={"description": "Longest question accepted; longer ones fail with a clear error."},
    )
    token_merge_window_ms: float = field(
        default=50.0,
        metadata={
            "description": "The HTTP app's fast route: answer tokens that are already waiting "
            "to be sent (a slow client, a busy server) go out as one event covering at most "
            "this many milliseconds of the answer; a client that keeps up gets every token at "
            "once. 0 sends each token as its own event."
        },
    )
    embedded_port: int = field(
        default=8000, metadata={"description": "Port of the embedded local vLLM server."}
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
        if self.execution_mode not in get_args(ExecutionMode):
            raise ConfigurationError(
                f"EXPRESSWAY_EXECUTION_MODE={self.execution_mode!r}: "
                f"use one of {', '.join(get_args(ExecutionMode))}"
            )
        if self.force_tier and self.force_tier not in get_args(TierName):
            raise ConfigurationError(
                f"EXPRESSWAY_FORCE_TIER={self.force_tier!r}: use 'fast', 'frontier' or leave empty"
            )
        for name in (
            "model_timeout_s",
            "tool_timeout_s",
            "max_concurrency",
            "max_plan_tasks",
            "max_question_chars",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"EXPRESSWAY_{name.upper()} must be greater than 0")
        if self.token_merge_window_ms < 0:
            raise ConfigurationError(
                "EXPRESSWAY_TOKEN_MERGE_WINDOW_MS must be 0 (never merge) or more"
            )
        for tier in get_args(TierName):
            url = getattr(self, f"{tier}_base_url")
            if url and not url.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"EXPRESSWAY_{tier.upper()}_BASE_URL={url!r} must start with http:// or "
                    "https:// (for example http://gpu-host:8000/v1)"
                )

    @property
    def embedded_base_url(self) -> str:
        return f"http://127.0.0.1:{self.embedded_port}/v1"

    def base_url(self, tier: TierName) -> str:
        """The tier's endpoint: its own URL, or the embedded server's when none is set."""
        return getattr(self, f"{tier}_base_url") or self.embedded_base_url

    def model_name(self, tier: TierName) -> str:
        return getattr(self, f"{tier}_model")

    def uses_embedded(self, tier: TierName) -> bool:
        return not getattr(self, f"{tier}_base_url")
