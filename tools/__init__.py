"""The agent's tools: plain functions whose docstrings are the descriptions the model sees."""

from collections.abc import Callable

from tools.calculator import calculator
from tools.clock import convert_time, current_time
from tools.docs_search import search_docs
from tools.sql import sql_query

DEFAULT_TOOLS: list[Callable[..., object]] = [
    calculator,
    sql_query,
    search_docs,
    current_time,
    convert_time,
]

__all__ = [
    "DEFAULT_TOOLS",
    "calculator",
    "convert_time",
    "current_time",
    "search_docs",
    "sql_query",
]
