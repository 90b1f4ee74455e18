"""The read-only flag on functions, LangChain tools and MCP tools; undeclared means side effects."""

import pytest
from langchain_core.tools import StructuredTool

from expressway.toolbox import as_tools, is_read_only, read_only
from tools import DEFAULT_TOOLS


def lookup(key: str) -> str:
    """Looks a key up."""
    return key


def test_an_undeclared_tool_counts_as_having_side_effects() -> None:
    assert not is_read_only(as_tools([lookup])[0])


def test_a_decorated_function_is_read_only_once_wrapped() -> None:
    @read_only
    async def fetch(key: str) -> str:
        """Fetches a key."""
        return key

    assert is_read_only(as_tools([fetch])[0])


def test_langchain_tools_declare_it_in_metadata_or_with_the_helper() -> None:
    by_metadata = StructuredTool.from_function(lookup, metadata={"read_only": True})
    by_helper = read_only(StructuredTool.from_function(lookup, name="other"))
    assert is_read_only(by_metadata) and is_read_only(by_helper)


def test_an_mcp_read_only_hint_counts() -> None:
    # langchain-mcp-adapters copies MCP tool annotations into the tool's metadata.
    hinted = StructuredTool.from_function(lookup, metadata={"readOnlyHint": True})
    destructive = StructuredTool.from_function(lookup, metadata={"readOnlyHint": False})
    assert is_read_only(hinted) and not is_read_only(destructive)


def test_the_shipped_tools_are_all_read_only() -> None:
    assert all(is_read_only(tool) for tool in as_tools(DEFAULT_TOOLS))


def test_two_tools_of_one_name_are_refused_by_name() -> None:
    def lookup(key: str) -> str:
        """Looks a key up in the order store."""
        return key

    other = StructuredTool.from_function(
        lambda key: key, name="lookup", description="Looks a key up in the CRM."
    )
    with pytest.raises(ValueError, match="named 'lookup'"):
        as_tools([lookup, other])
