"""Which tools fit a question and which examples the planner sees, for tools it has no
hand-written examples of."""

from typing import Literal

import numpy as np

from expressway import encoder as encoder_module
from expressway.encoder import MAX_TOKENS
from expressway.toolbox import as_tools, example
from nodes.planner import planner_messages
from nodes.tool_choice import (
    ENCODER_LAYERS,
    derived_example,
    example_arguments,
    question_entities,
    tool_catalog,
)
from routers import classify
from routers.train import DATA_DIR as ROUTER_DATA
from routers.train import load_examples, train


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


def test_an_encoder_setting_is_one_encoder_however_it_is_asked_for(monkeypatch, tmp_path) -> None:
    """A router trained at the planner's token cap, deciding with the encoder, and the tool
    ranking share one encoder: the question is embedded once for both."""
    question = "Is it going to rain in Bergen tomorrow, and what does a krone buy in euros?"
    examples = load_examples(ROUTER_DATA / "train.jsonl")[::20]
    weights = train(examples, layers=ENCODER_LAYERS, tokens=MAX_TOKENS)
    without_cascade = {k: v for k, v in weights.items() if not k.startswith("ngram_")}
    np.savez_compressed(tmp_path / "model.npz", **without_cascade)
    catalog, passes = tool_catalog(TOOLS), []
    run_encoder = encoder_module.SentenceEncoder._embed_texts

    def counted(self, texts: list[str]):
        passes.extend(texts)
        return run_encoder(self, texts)

    monkeypatch.setattr(encoder_module.SentenceEncoder, "_embed_texts", counted)
    classify(question, model_path=tmp_path / "model.npz")
    catalog.rank(question)
    assert passes == [question]


def test_derived_arguments_come_from_the_schema_and_the_description() -> None:
    tool = TOOLS[1]
    arguments = example_arguments(
        {"required": ["base", "quote"], "properties": {"base": {}, "quote": {}}},
        tool.description,
    )
    assert arguments == {"base": "EUR", "quote": "USD"}  # offered by "like EUR, USD"
    question, steps = derived_example(TOOLS[0], tool_catalog(TOOLS).parameters[0])
    assert question.startswith("Current weather conditions") and steps[0][0] == "weather_now"


def test_a_text_argument_with_no_offered_value_takes_the_questions_names() -> None:
    question = "Fares from Harwick to Skerra Island for 2 adults, booking NS-88231?"
    assert question_entities(question) == ["Harwick", "Skerra Island", "NS-88231"]
    assert question_entities("Is LH400 on time? And AF11?") == ["LH400", "AF11"]
    # An apostrophe quotes nothing, in a question or in a description.
    assert question_entities("What's sailing 'NS103' from Harwick's pier?") == ["NS103", "Harwick"]
    assert example_arguments(
        {"required": ["sailing"], "properties": {"sailing": {}}},
        "Today's status of a sailing (e.g. 'NS103').",
    ) == {"sailing": "NS103"}
    schema = {
        "required": ["origin", "destination"],
        "properties": {"origin": {}, "destination": {}},
    }
    entities = question_entities(question)
    arguments = example_arguments(schema, "Quote a fare for a route.", entities)
    assert arguments == {"origin": "Harwick", "destination": "Skerra Island"}
    # Without names in the question, the argument's name is all there is.
    assert example_arguments(schema, "Quote a fare.", [])["origin"] == "origin"
    # A value the description offers comes first: it shows the format.
    assert example_arguments(
        {"required": ["base"], "properties": {"base": {}}}, TOOLS[1].description, entities
    ) == {"base": "EUR"}
    shown = planner_messages("What is the weather in Lisbon?", TOOLS)[2].text
    assert '{"weather_now":{"city":"Lisbon"}}' in shown


def test_a_question_fitting_two_tools_gets_a_two_step_example_and_a_hint() -> None:
    messages = planner_messages("Weather in Lisbon, and the EUR to USD rate?", TOOLS)
    example_plan = messages[2].text
    assert '"weather_now"' in example_plan and '"fx_rate"' in example_plan
    assert "(Tools that fit: " in messages[-1].text and "weather_now" in messages[-1].text


def test_an_authors_example_is_shown_before_a_derived_one() -> None:
    messages = planner_messages("Is AF11 delayed?", TOOLS)
    shown = "\n".join(message.text for message in messages[1:-1])
    assert "Is LH400 on time" in shown and '{"flight_board":{"flight":"LH400"}}' in shown


def test_the_shipped_ranking_finds_the_tools_of_sets_written_by_someone_else() -> None:
    """bench/data/unseen_tools.json: three tool sets with near-duplicate tools and 60 paraphrased
    questions by another author. Measured with the shipped 6 layers: best tool needed for 67%,
    every needed tool among the fitting ones for 82% (3 layers: 33% and 62%)."""
    from bench.tool_choice import DATA, load_sets, measure

    figures = measure(load_sets(DATA), ENCODER_LAYERS)
    assert figures["questions"] == 60
    assert figures["top1"] >= 0.6
    assert figures["needed_in_fitting"] >= 0.75
    assert figures["encoder_ms_per_question_in_passes"] > 0


def test_the_ranking_depth_is_a_setting() -> None:
    from nodes.tool_choice import _CATALOGS

    planner_messages("Weather in Lisbon?", TOOLS, ranking_layers=2)
    assert {layers for _, layers in _CATALOGS} >= {2}
    assert tool_catalog(TOOLS, 2).layers == 2


def test_the_settings_encoder_depth_is_the_encoders() -> None:
    from expressway.context import ENCODER_DEPTH
    from expressway.encoder import read_package

    assert read_package()[1]["num_hidden_layers"] == ENCODER_DEPTH
