"""Which tools fit a question and which examples the planner sees, for tools it has no
hand-written examples of."""

from typing import Literal

from expressway.toolbox import as_tools, example
from nodes.planner import planner_messages
from nodes.tool_choice import derived_example, example_arguments, tool_catalog


def weather_now(city: str, units: Literal["metric", "imperial"] = "metric") -> str:
    """Current weather conditions and temperature for a city."""
    return city


async def fx_rate(base: str, quote: str) -> float:
    """How many units of the quote currency one unit of the base currency buys (ISO codes like
    EUR, USD)."""
    return 1.0


@example("Is LH400 on time?", flight="LH400")
def flight_board(flight: str) -> dict:
    """Live departure status of a flight."""
    return {}


TOOLS = as_tools([weather_now, fx_rate, flight_board])


def test_the_encoder_ranks_the_tool_a_question_needs_first() -> None:
    catalog = tool_catalog(TOOLS)
    assert catalog.rank("Is it going to rain in Oslo?")[0][0].name == "weather_now"
    assert catalog.rank("How many yen is one dollar?")[0][0].name == "fx_rate"
    assert catalog.rank("Has BA283 left yet?")[0][0].name == "flight_board"


def test_derived_arguments_come_from_the_schema_and_the_description() -> None:
    tool = TOOLS[1]
    arguments = example_arguments(
        {"required": ["base", "quote"], "properties": {"base": {}, "quote": {}}},
        tool.description,
    )
    assert arguments == {"base": "EUR", "quote": "USD"}  # offered by "like EUR, USD"
    question, steps = derived_example(TOOLS[0], tool_catalog(TOOLS).parameters[0])
    assert question.startswith("Current weather conditions") and steps[0][0] == "weather_now"


def test_a_question_fitting_two_tools_gets_a_two_step_example_and_a_hint() -> None:
    messages = planner_messages("Weather in Lisbon, and the EUR to USD rate?", TOOLS)
    example_plan = messages[2].text
    assert '"weather_now"' in example_plan and '"fx_rate"' in example_plan
    assert "(Tools that fit: " in messages[-1].text and "weather_now" in messages[-1].text


def test_an_authors_example_is_shown_before_a_derived_one() -> None:
    messages = planner_messages("Is AF11 delayed?", TOOLS)
    shown = "\n".join(message.text for message in messages[1:-1])
    assert "Is LH400 on time" in shown and '{"flight_board":{"flight":"LH400"}}' in shown
