"""What build_graph hands to the nodes that call models and tools."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool


@dataclass(frozen=True)
class Toolbox:
    """The run's tools, and chat models that replace a tier's endpoint (e.g. fakes in tests)."""

    tools: list[BaseTool]
    models: Mapping[str, BaseChatModel] = field(default_factory=dict)
